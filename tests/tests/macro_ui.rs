//! Compile-error and compile-pass tests of `#[peeper::server]` and `#[derive(peeper::State)]`:
//! one mistake per file in `tests/ui/fail`, each with the compiler's output committed next to it
//! (`TRYBUILD=overwrite` regenerates them; read every change). The snapshots depend on the
//! compiler's wording, so the toolchain is pinned in `rust-toolchain.toml`.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("ui/pass/*.rs");
    cases.compile_fail("ui/fail/*.rs");
}
