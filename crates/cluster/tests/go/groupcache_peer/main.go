// groupcache_peer: one golang/groupcache node for shoal-cluster's interop test.
//
// It serves the groupcache peer protocol on -self (its own URL in -peers) with a group
// "things" whose getter returns "value-of:" + key (and fails keys starting with
// "missing/"), and a small API on -api:
//
//	GET /get?hex=<hex key>    group.Get through the pool: 200 + value, or 500 + error
//	GET /loads?hex=<hex key>  how many times the getter ran for that key
//	GET /loads                how many times the getter ran in total
//	POST /owners              body: hex keys, one a line; reply: for each, the URL of the
//	                          peer the pool's PickPeer picks (-self when it picks none)
//
// Built by the test in GOPATH mode (GO111MODULE=off, GOPATH=/usr/share/gocode) against
// Debian's golang-github-golang-groupcache-dev: no network.
package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"

	"github.com/golang/groupcache"
)

func main() {
	self := flag.String("self", "", "this node's peer URL, exactly as in -peers")
	peers := flag.String("peers", "", "comma-separated peer URLs")
	api := flag.String("api", "", "host:port of the test API")
	flag.Parse()

	var mu sync.Mutex
	loads := map[string]int{}
	total := 0

	pool := groupcache.NewHTTPPool(*self)
	pool.Set(strings.Split(*peers, ",")...)
	group := groupcache.NewGroup("things", 64<<20, groupcache.GetterFunc(
		func(ctx context.Context, key string, dest groupcache.Sink) error {
			mu.Lock()
			loads[key]++
			total++
			mu.Unlock()
			if strings.HasPrefix(key, "missing/") {
				return errors.New("not found")
			}
			return dest.SetString("value-of:" + key)
		}))

	mux := http.NewServeMux()
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		key, err := hex.DecodeString(r.URL.Query().Get("hex"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var v string
		if err := group.Get(r.Context(), string(key), groupcache.StringSink(&v)); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Write([]byte(v))
	})
	mux.HandleFunc("/loads", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if h := r.URL.Query().Get("hex"); h != "" {
			key, _ := hex.DecodeString(h)
			fmt.Fprint(w, loads[string(key)])
			return
		}
		fmt.Fprint(w, total)
	})
	mux.HandleFunc("/owners", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 64<<20))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var out strings.Builder
		for _, line := range strings.Split(strings.TrimSuffix(string(body), "\n"), "\n") {
			key, err := hex.DecodeString(line)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			out.WriteString(owner(pool, *self, string(key)))
			out.WriteString("\n")
		}
		io.WriteString(w, out.String())
	})
	go func() { log.Fatal(http.ListenAndServe(*api, mux)) }()

	u, err := url.Parse(*self)
	if err != nil {
		log.Fatal(err)
	}
	// NewHTTPPool registered the pool on http.DefaultServeMux.
	log.Fatal(http.ListenAndServe(u.Host, nil))
}

// owner is the URL of the peer pool picks for key: its own when PickPeer picks none.
func owner(pool *groupcache.HTTPPool, self, key string) string {
	getter, ok := pool.PickPeer(key)
	if !ok {
		return self
	}
	// The picked *httpGetter keeps the peer's URL + "/_groupcache/" in an unexported
	// field, which reflect can read.
	base := reflect.ValueOf(getter).Elem().FieldByName("baseURL").String()
	return strings.TrimSuffix(base, "/_groupcache/")
}
