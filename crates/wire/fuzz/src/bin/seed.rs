//! Writes the seed corpus for the `requests` target into the directory given as argv[1]: for
//! every (API key, version) Shoal advertises, `PER_VERSION` valid bodies from the schema-driven
//! generator (`shoal_wire::gen`), each prefixed with the key and version (big-endian), the input
//! format of `shoal_wire::fuzz_one`. Deterministic: the same tree writes the same files.

use std::path::PathBuf;

const PER_VERSION: u64 = 4;

fn main() {
    let Some(dir) = std::env::args_os().nth(1).map(PathBuf::from) else {
        eprintln!("usage: seed <corpus-dir>");
        std::process::exit(2);
    };
    if let Err(e) = std::fs::create_dir_all(&dir) {
        eprintln!("seed: cannot create {}: {e}", dir.display());
        std::process::exit(1);
    }
    let (mut written, mut decoded) = (0usize, 0usize);
    for (key, version) in shoal_wire::versions() {
        let schema = shoal_wire::schema(key, version).expect("versions() pairs have a schema");
        for i in 0..PER_VERSION {
            // xorshift needs a non-zero state.
            let seed = 0x9e37_79b9_7f4a_7c15
                ^ ((key as u16 as u64) << 32 | (version as u16 as u64) << 16 | i);
            let body = shoal_wire::gen::body(schema, version, &mut shoal_wire::gen::Rng(seed));
            let mut input = Vec::with_capacity(4 + body.len());
            input.extend_from_slice(&key.to_be_bytes());
            input.extend_from_slice(&version.to_be_bytes());
            input.extend_from_slice(&body);
            let path = dir.join(format!("gen-{key}-v{version}-{i}"));
            if let Err(e) = std::fs::write(&path, &input) {
                eprintln!("seed: cannot write {}: {e}", path.display());
                std::process::exit(1);
            }
            written += 1;
            decoded += usize::from(shoal_wire::fuzz_one(&input));
        }
    }
    println!(
        "seed: wrote {written} inputs to {} ({decoded} decode)",
        dir.display()
    );
}
