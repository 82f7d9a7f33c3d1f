//! The repair journal: one line per write a replica missed, appended and fsync'd before the
//! client gets its answer, so a crash cannot lose the record.
//!
//! A line is `UNIX_SECONDS<TAB>PUT|DELETE<TAB>REPLICA_BASE_URL<TAB>PATH`, the path
//! percent-encoded (it never holds a tab or newline, and bytes that are not UTF-8 survive it).
//! Writers and `shoal repair` take an exclusive lock on `JOURNAL.lock` around each append or
//! take-over, so repair can move the journal aside while the router keeps appending to a
//! fresh one.
//!
//! A repair also holds [`RepairLock`] (an exclusive lock on `JOURNAL.repair-lock`) from before
//! it takes the journal until its leftovers are back in it: two repairs at once would both
//! replay what one moved aside, and the first to finish would delete the `.repairing` file
//! the other had added newer entries to. It is a lock file of its own, not `JOURNAL.lock`, so
//! routers appending meanwhile never wait for a repair, only for another append or a take.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::sync::{mpsc, oneshot};

use crate::RouteError;
use crate::normalize::{encode_path, unescape};

/// One missed write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// When it was missed (Unix seconds).
    pub at: u64,
    /// `PUT` or `DELETE`.
    pub op: String,
    /// The replica's base URL.
    pub replica: String,
    /// The normalised path, with its leading `/`: bytes, UTF-8 or not, as the router hashed
    /// and stored them.
    pub path: Vec<u8>,
}

impl Entry {
    /// An entry stamped now.
    pub fn now(op: &str, replica: &str, path: impl AsRef<[u8]>) -> Self {
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        Entry {
            at,
            op: op.to_string(),
            replica: replica.to_string(),
            path: path.as_ref().to_vec(),
        }
    }

    /// The journal line, with its newline.
    pub fn line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\n",
            self.at,
            self.op,
            self.replica,
            encode_path(&self.path)
        )
    }

    /// Parses a line; `None` for a torn or foreign line.
    pub fn parse(line: &str) -> Option<Self> {
        let mut f = line.trim_end_matches('\n').split('\t');
        let (at, op, replica, path) = (f.next()?, f.next()?, f.next()?, f.next()?);
        if f.next().is_some() || !matches!(op, "PUT" | "DELETE") {
            return None;
        }
        Some(Entry {
            at: at.parse().ok()?,
            op: op.to_string(),
            replica: replica.to_string(),
            path: unescape(path, false).ok()?,
        })
    }
}

fn lock_path(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(".lock");
    PathBuf::from(p)
}

/// Runs `f` holding the journal's lock file.
fn locked<T>(path: &Path, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(lock_path(path))?;
    lock.lock()?;
    let out = f();
    let _ = lock.unlock();
    out
}

/// Appends `entries` to the journal at `path` and fsyncs it.
pub fn append(path: &Path, entries: &[Entry]) -> Result<(), RouteError> {
    let lines: String = entries.iter().map(Entry::line).collect();
    locked(path, || append_lines(path, lines.as_bytes())).map_err(|e| RouteError::io(path, e))
}

/// Appends whole `lines` to the file at `path` and fsyncs it; the caller holds the lock.
fn append_lines(path: &Path, lines: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let mut buf = Vec::with_capacity(lines.len() + 1);
    let fresh = f.metadata()?.len() == 0;
    // A write cut short (disk full, crash) left a line without its newline: end it, or this
    // batch's first entry would be glued onto it and lost with it.
    if !fresh {
        let mut last = [0u8; 1];
        f.seek(SeekFrom::End(-1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            buf.push(b'\n');
        }
    }
    buf.extend_from_slice(lines);
    f.write_all(&buf)?;
    f.sync_data()?;
    // A file just created (or emptied and taken) is durable only once its directory entry
    // is: without this a crash could lose the journal along with the entries just synced.
    if fresh { sync_dir(path) } else { Ok(()) }
}

/// Makes the creation, renaming or removal of a file in `path`'s directory durable.
fn sync_dir(path: &Path) -> io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}

/// Reads every entry; torn or foreign lines are skipped and counted.
pub fn read(path: &Path) -> Result<(Vec<Entry>, usize), RouteError> {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(RouteError::io(path, e)),
    };
    let (mut out, mut bad) = (Vec::new(), 0);
    // By bytes: a corrupted block is a bad line, not a journal nothing can read any more.
    for line in io::BufReader::new(f).split(b'\n') {
        let line = line.map_err(|e| RouteError::io(path, e))?;
        match std::str::from_utf8(&line)
            .ok()
            .map(|l| (l, Entry::parse(l)))
        {
            Some((_, Some(e))) => out.push(e),
            Some((l, None)) if l.trim().is_empty() => {}
            _ => bad += 1,
        }
    }
    Ok((out, bad))
}

/// The exclusive right to replay the journal at a path, held until dropped; see the module
/// docs. The lock file stays on disk: removing it would let a repair lock the old file while
/// another locks a new one.
#[derive(Debug)]
pub struct RepairLock {
    /// Closing it (on drop, or when the process ends however it ends) releases the lock.
    _file: File,
}

/// `JOURNAL.repair-lock`.
pub fn repair_lock_path(journal: &Path) -> PathBuf {
    let mut p = journal.as_os_str().to_owned();
    p.push(".repair-lock");
    PathBuf::from(p)
}

/// Takes the [`RepairLock`] for the journal at `path`, without waiting: when another repair
/// (in this process or another) holds it, [`RouteError::RepairRunning`].
pub fn lock_for_repair(path: &Path) -> Result<RepairLock, RouteError> {
    let lock = repair_lock_path(path);
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock)
        .map_err(|e| RouteError::io(&lock, e))?;
    match file.try_lock() {
        Ok(()) => Ok(RepairLock { _file: file }),
        Err(std::fs::TryLockError::WouldBlock) => Err(RouteError::RepairRunning {
            journal: path.to_path_buf(),
            lock,
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(RouteError::io(&lock, e)),
    }
}

/// Moves the journal aside (to `PATH.repairing`) and returns what it held, so new misses go
/// to a fresh journal while repair works. A leftover `.repairing` file from an interrupted
/// repair is read first. The caller holds the [`RepairLock`]: the `.repairing` file is the
/// one repair's alone until [`finish_take`].
pub fn take(path: &Path, _repairing: &RepairLock) -> Result<Vec<Entry>, RouteError> {
    let aside = aside_path(path);
    locked(path, || {
        if !aside.exists() {
            return match std::fs::rename(path, &aside) {
                Ok(()) => sync_dir(path),
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                Err(_) => Ok(()),
            };
        }
        // An interrupted repair's entries are still aside: add the newer ones after them
        // (renaming over the file would drop them), so the file keeps every entry until
        // they are repaired.
        let newer = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        append_lines(&aside, &newer)?;
        std::fs::remove_file(path)?;
        sync_dir(path)
    })
    .map_err(|e| RouteError::io(path, e))?;
    Ok(read(&aside)?.0)
}

/// What [`take`] would return, moving nothing: an interrupted repair's `.repairing` entries,
/// then the journal's. For a dry run, which holds the [`RepairLock`] so that no other repair
/// is moving entries about meanwhile.
pub fn peek(path: &Path, _repairing: &RepairLock) -> Result<Vec<Entry>, RouteError> {
    let mut entries = read(&aside_path(path))?.0;
    entries.extend(read(path)?.0);
    Ok(entries)
}

/// Removes the `.repairing` file once its entries are repaired or re-journalled.
pub fn finish_take(path: &Path, _repairing: &RepairLock) -> Result<(), RouteError> {
    let aside = aside_path(path);
    match std::fs::remove_file(&aside) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(RouteError::io(aside, e)),
    }
}

/// `JOURNAL.repairing`, where a repair moves the journal's entries while it replays them.
fn aside_path(journal: &Path) -> PathBuf {
    let mut p = journal.as_os_str().to_owned();
    p.push(".repairing");
    PathBuf::from(p)
}

type Batch = (Vec<Entry>, oneshot::Sender<Result<(), String>>);

/// The router's journal writer: appends from one thread, batching concurrent records into one
/// fsync.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
    tx: mpsc::Sender<Batch>,
    /// What [`Journal::backlog`] counted so far: every `/status` and metrics scrape asks, and
    /// a journal that grew while a replica was down for a day would be read whole each time.
    counted: std::sync::Arc<parking_lot::Mutex<Counted>>,
}

/// The journal file (by inode) as far as its whole lines were counted, and the entries in
/// them.
#[derive(Debug, Default, Clone, Copy)]
struct Counted {
    ino: u64,
    /// Its birth time where the file system keeps one: an inode number alone may be reused
    /// by the next journal once a repair removed the old one.
    born: Option<SystemTime>,
    upto: u64,
    entries: usize,
}

/// Counts the entries added to the journal at `path` since `c`, reading only what follows
/// `c.upto` unless the file was replaced or cut. A last line without its newline (being
/// written, or torn) waits for it.
fn count_new(path: &Path, c: &mut Counted) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            *c = Counted::default();
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let m = f.metadata()?;
    let born = m.created().ok();
    if m.ino() != c.ino || born != c.born || m.len() < c.upto {
        *c = Counted {
            ino: m.ino(),
            born,
            ..Counted::default()
        };
    }
    let mut r = io::BufReader::new(f);
    r.seek(SeekFrom::Start(c.upto))?;
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            return Ok(());
        }
        c.upto += n as u64;
        if std::str::from_utf8(&line)
            .ok()
            .and_then(Entry::parse)
            .is_some()
        {
            c.entries += 1;
        }
    }
}

impl Journal {
    /// Starts the writer thread for the journal at `path` (created on first write). Checks now
    /// that the file can be opened for appending.
    pub fn open(path: &Path) -> Result<Self, RouteError> {
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| RouteError::io(path, e))?;
        let (tx, mut rx) = mpsc::channel::<Batch>(1024);
        let p = path.to_path_buf();
        std::thread::Builder::new()
            .name("shoal-journal".into())
            .spawn(move || {
                while let Some(first) = rx.blocking_recv() {
                    let mut batch = vec![first];
                    while let Ok(more) = rx.try_recv() {
                        batch.push(more);
                    }
                    let all: Vec<Entry> = batch.iter().flat_map(|b| b.0.clone()).collect();
                    let res = append(&p, &all).map_err(|e| e.to_string());
                    if let Err(e) = &res {
                        tracing::error!(error = %e, "repair journal append failed");
                    }
                    for (_, ack) in batch {
                        let _ = ack.send(res.clone());
                    }
                }
            })
            .map_err(|e| RouteError::io(path, e))?;
        Ok(Journal {
            path: path.to_path_buf(),
            tx,
            counted: std::sync::Arc::default(),
        })
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records `entries` durably; resolves once they are fsync'd.
    pub async fn record(&self, entries: Vec<Entry>) -> Result<(), String> {
        if entries.is_empty() {
            return Ok(());
        }
        let (ack, done) = oneshot::channel();
        self.tx
            .send((entries, ack))
            .await
            .map_err(|_| "journal writer stopped".to_string())?;
        done.await
            .map_err(|_| "journal writer stopped".to_string())?
    }

    /// Entries waiting for repair (lines in the journal now).
    pub fn backlog(&self) -> usize {
        let mut c = self.counted.lock();
        match count_new(&self.path, &mut c) {
            Ok(()) => c.entries,
            Err(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn records_are_durable_lines_and_take_moves_them_aside() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal");
        let j = Journal::open(&p).unwrap();
        let e = Entry::now("PUT", "http://127.0.0.1:1", "/a b/c.jpg");
        j.record(vec![e.clone(), Entry::now("DELETE", "http://h:2", "/x")])
            .await
            .unwrap();
        assert_eq!(j.backlog(), 2);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("/a%20b/c.jpg"), "{text}");
        std::fs::write(&p, format!("{text}garbage\n")).unwrap();
        let (all, bad) = read(&p).unwrap();
        assert_eq!((all.len(), bad), (2, 1));
        assert_eq!(all[0], e);
        let lock = lock_for_repair(&p).unwrap();
        let taken = take(&p, &lock).unwrap();
        assert_eq!(taken.len(), 2);
        assert_eq!(j.backlog(), 0);
        finish_take(&p, &lock).unwrap();
    }

    /// The backlog is counted from where the last count stopped; it must stay what a full
    /// read says through appends, a line being written, garbage, a take and a new journal.
    #[tokio::test]
    async fn the_backlog_follows_the_journal_through_appends_and_takes() {
        use std::io::Write as _;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal");
        let j = Journal::open(&p).unwrap();
        assert_eq!(j.backlog(), 0);
        let e = |i: usize| Entry::now("PUT", "http://127.0.0.1:1", format!("/f/{i}.jpg"));
        j.record((0..3).map(e).collect()).await.unwrap();
        assert_eq!(j.backlog(), 3);
        j.record(vec![e(3)]).await.unwrap();
        assert_eq!(j.backlog(), 4);
        // Half a line (being written): not counted until its newline comes.
        let line = e(4).line();
        let (head, tail) = line.split_at(10);
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(head.as_bytes()).unwrap();
        assert_eq!(j.backlog(), 4);
        f.write_all(format!("{tail}garbage\n").as_bytes()).unwrap();
        assert_eq!(j.backlog(), 5);
        assert_eq!(j.backlog(), read(&p).unwrap().0.len());
        // Taken by a repair: the journal is gone, then a new one starts.
        assert_eq!(take(&p, &lock_for_repair(&p).unwrap()).unwrap().len(), 5);
        assert_eq!(j.backlog(), 0);
        j.record(vec![e(9)]).await.unwrap();
        assert_eq!(j.backlog(), 1);
        // Rewritten shorter in place (same file): counted again from the start.
        std::fs::write(&p, "").unwrap();
        assert_eq!(j.backlog(), 0);
    }

    /// A write cut short (a full disk, a crash) leaves a line without its newline; the next
    /// append must not glue its entry onto it.
    #[tokio::test]
    async fn an_append_after_a_torn_line_starts_a_line_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal");
        std::fs::write(&p, "1700000000\tPUT\thttp://127.0.0.1:1\t/a/b.j").unwrap();
        let j = Journal::open(&p).unwrap();
        let e = Entry::now("PUT", "http://127.0.0.1:2", "/c/d.jpg");
        j.record(vec![e.clone()]).await.unwrap();
        let (all, _) = read(&p).unwrap();
        assert_eq!(all.last(), Some(&e), "{:?}", std::fs::read_to_string(&p));
    }

    /// A repair interrupted after it took the journal leaves `.repairing`; the router keeps
    /// journalling meanwhile. The next take must return both, and keep both on disk until
    /// they are repaired.
    #[test]
    fn take_keeps_an_interrupted_repairs_entries() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal");
        let older = Entry::now("PUT", "http://127.0.0.1:1", "/older.jpg");
        let newer = Entry::now("PUT", "http://127.0.0.1:1", "/newer.jpg");
        append(&p, std::slice::from_ref(&older)).unwrap();
        // Each repair takes the lock; one interrupted (dropped) releases it.
        let lock = lock_for_repair(&p).unwrap();
        assert_eq!(take(&p, &lock).unwrap(), vec![older.clone()]);
        drop(lock);
        // Interrupted here: no finish_take.
        append(&p, std::slice::from_ref(&newer)).unwrap();
        let lock = lock_for_repair(&p).unwrap();
        assert_eq!(peek(&p, &lock).unwrap(), vec![older.clone(), newer.clone()]);
        assert_eq!(take(&p, &lock).unwrap(), vec![older.clone(), newer.clone()]);
        drop(lock);
        // Interrupted again: still nothing lost.
        let lock = lock_for_repair(&p).unwrap();
        assert_eq!(take(&p, &lock).unwrap(), vec![older, newer]);
    }

    /// One repair at a time per journal, in this process or another (flock): a second is
    /// refused at once, naming the journal; appends go on meanwhile; the lock goes with the
    /// repair that held it.
    #[test]
    fn one_repair_at_a_time_and_appends_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal");
        let e = Entry::now("PUT", "http://127.0.0.1:1", "/a.jpg");
        append(&p, std::slice::from_ref(&e)).unwrap();
        let lock = lock_for_repair(&p).unwrap();
        assert_eq!(take(&p, &lock).unwrap(), vec![e.clone()]);
        let refused = lock_for_repair(&p).unwrap_err();
        assert!(
            matches!(&refused, RouteError::RepairRunning { journal, .. } if *journal == p),
            "{refused}"
        );
        assert!(
            refused.to_string().contains("another `shoal repair`"),
            "{refused}"
        );
        let late = Entry::now("DELETE", "http://127.0.0.1:1", "/b.jpg");
        append(&p, std::slice::from_ref(&late)).unwrap();
        finish_take(&p, &lock).unwrap();
        drop(lock);
        let lock = lock_for_repair(&p).unwrap();
        assert_eq!(take(&p, &lock).unwrap(), vec![late]);
    }

    /// A path that is not UTF-8 (a Latin-1 name) is written percent-encoded and read back as
    /// the same bytes.
    #[test]
    fn a_path_that_is_not_utf8_round_trips() {
        let e = Entry::now("PUT", "http://127.0.0.1:1", b"/caf\xe9 \xff.jpg");
        assert!(e.line().ends_with("\t/caf%E9%20%FF.jpg\n"), "{}", e.line());
        assert_eq!(Entry::parse(&e.line()), Some(e));
    }

    /// Bytes that are not UTF-8 (a corrupted block) are a bad line, not a journal that can no
    /// longer be read or repaired.
    #[test]
    fn a_line_that_is_not_utf8_is_skipped_and_counted() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("journal");
        let good = Entry::now("DELETE", "http://127.0.0.1:2", "/x.jpg");
        let mut bytes = b"1700000000\tPUT\thttp://h:1\t/\xff\xfe\n".to_vec();
        bytes.extend(good.line().as_bytes());
        std::fs::write(&p, bytes).unwrap();
        assert_eq!(read(&p).unwrap(), (vec![good.clone()], 1));
        assert_eq!(take(&p, &lock_for_repair(&p).unwrap()).unwrap(), vec![good]);
    }
}
