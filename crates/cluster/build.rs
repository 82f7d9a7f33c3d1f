//! Compiles `proto/galaxycache.proto` with protox (pure Rust: no system `protoc`) and
//! generates the tonic client and server.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/galaxycache.proto");
    let fds = protox::compile(["proto/galaxycache.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .bytes(".galaxycachepb")
        .compile_fds(fds)?;
    Ok(())
}
