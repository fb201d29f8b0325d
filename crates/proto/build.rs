//! Generates the `atende.v1` messages and services with protox (pure Rust, so no `protoc`
//! binary is needed on a fresh machine) and writes the descriptor set for reflection.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Read at run time: the compiled build script is shared by every checkout that uses the
    // same target dir (CI clones beside the work tree), so a path baked in at compile time
    // would point into whichever checkout built it first.
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "atende/v1/common.proto",
        "atende/v1/events.proto",
        "atende/v1/session.proto",
        "atende/v1/router.proto",
        "atende/v1/admin.proto",
        "atende/v1/broadcast.proto",
    ];
    for f in &files {
        println!("cargo:rerun-if-changed={}", root.join(f).display());
    }
    let fds = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_path = out.join("atende_descriptor.bin");
    std::fs::write(&descriptor_path, prost::Message::encode_to_vec(&fds))?;
    // Plain data messages serialize as JSON for the gateway's HTTP API (snake_case fields,
    // enums as their numbers); the API documents the shapes it answers.
    tonic_prost_build::configure()
        .type_attribute(".atende.v1", "#[derive(serde::Serialize)]")
        .type_attribute(
            ".atende.v1",
            "#[cfg_attr(feature = \"openapi\", derive(utoipa::ToSchema))]",
        )
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
