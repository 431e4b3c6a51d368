//! The fuzz target's programs without libFuzzer, on stable Rust: the
//! committed corpus, then seeded random programs (half of them corpus
//! entries with random edits). scripts/fuzz_core.sh runs this when nightly
//! is missing, so the check never silently disappears.
//!
//! `MRCONN_FUZZ_CORE_RUNS` (default 10000) programs; `MRCONN_FUZZ_CORE_SEED`
//! replays a run (default: a new seed, printed).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// splitmix64: tiny, and the same sequence everywhere for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn env_u64(name: &str) -> Option<u64> {
    let v = std::env::var(name).ok().filter(|v| !v.is_empty())?;
    Some(
        v.parse()
            .unwrap_or_else(|_| panic!("{name}={v} is not a number")),
    )
}

fn corpus() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("the committed corpus")
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("corpus file"))
        .collect()
}

#[test]
fn corpus_and_seeded_programs_keep_every_invariant() {
    let runs = env_u64("MRCONN_FUZZ_CORE_RUNS").unwrap_or(10_000);
    let seed = env_u64("MRCONN_FUZZ_CORE_SEED").unwrap_or_else(|| {
        let t = SystemTime::now().duration_since(UNIX_EPOCH);
        t.map_or(1, |d| d.as_nanos() as u64)
    });
    let corpus = corpus();
    assert!(!corpus.is_empty(), "the corpus is empty");
    // Before any failure, so that it can be replayed.
    println!("seeded property run: MRCONN_FUZZ_CORE_SEED={seed}, {runs} programs");
    let started = Instant::now();
    for program in &corpus {
        mrconn_core_fuzz::run(program);
    }
    let mut rng = Rng(seed);
    let mut program = Vec::new();
    for _ in 0..runs {
        program.clear();
        if rng.next() & 1 == 0 {
            program.extend_from_slice(&corpus[rng.below(corpus.len())]);
            for _ in 0..=rng.below(8) {
                if program.is_empty() {
                    break;
                }
                let at = rng.below(program.len());
                program[at] = rng.next() as u8;
            }
        }
        let extra = rng.below(1024);
        program.extend((0..extra).map(|_| rng.next() as u8));
        mrconn_core_fuzz::run(&program);
    }
    let secs = started.elapsed().as_secs_f64();
    let total = corpus.len() as u64 + runs;
    println!(
        "seeded property run: {total} executions ({} corpus + {runs} random) in {secs:.1} s, {:.0} execs/s",
        corpus.len(),
        total as f64 / secs
    );
}
