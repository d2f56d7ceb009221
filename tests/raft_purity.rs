//! `src/raft/` stays pure: no actix, tokio, files, sockets, clock or global RNG in its code
//! (comments may name them). This fails the build when one appears.

const FORBIDDEN: &[&str] = &[
    "actix::",
    "actix_rt",
    "tokio::",
    "std::fs",
    "std::net",
    "Instant::now",
    "SystemTime::now",
    "thread_rng",
    "rand::",
    "std::thread",
    "std::env",
];

#[test]
fn the_protocol_core_does_no_io_and_reads_no_clock() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/raft");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in FORBIDDEN {
                assert!(
                    !code.contains(word),
                    "{}:{}: '{word}' in the pure core: {line}",
                    path.display(),
                    n + 1
                );
            }
        }
        checked += 1;
    }
    assert!(checked >= 10, "only {checked} files found in {dir}");
}
