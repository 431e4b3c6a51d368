//! The committed C header must be what cbindgen makes of the sources today.

use std::path::Path;

fn generate() -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("read cbindgen.toml");
    let mut out = Vec::new();
    cbindgen::Builder::new()
        .with_src(root.join("src/exports.rs"))
        .with_src(root.join("src/manager.rs"))
        .with_config(config)
        .generate()
        .expect("cbindgen generates the header")
        .write(&mut out);
    String::from_utf8(out).expect("the header is UTF-8")
}

#[test]
fn committed_header_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/conn.h");
    let fresh = generate();
    if std::env::var_os("MRCONN_BLESS").is_some() {
        std::fs::write(&path, &fresh).expect("write include/conn.h");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == fresh,
        "include/conn.h is stale: run `MRCONN_BLESS=1 cargo test --test header` and commit it"
    );
}
