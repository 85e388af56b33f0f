//! Crash safety: `hearth standalone` is killed with SIGKILL while remote
//! writes are in flight, again and again, and restarted; every sample it
//! acknowledged must be there afterwards, bit for bit, and nothing that was
//! never sent may appear.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rand::Rng;

const SERIES: usize = 20;
const SAMPLES_PER_REQUEST: i64 = 5;

fn value(series: usize, t: i64) -> f64 {
    (t % 100_000) as f64 * 0.5 + series as f64
}

#[test]
fn sigkill_during_remote_writes_loses_no_acknowledged_sample() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let acked: Arc<Mutex<BTreeMap<(usize, i64), u64>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    // Timestamps advance by one millisecond per sample; the next unsent one:
    let next_t = Arc::new(AtomicI64::new(now - 30 * 60 * 1000));
    let mut rng = rand::rng();
    let mut kills = 0;
    for round in 0..6 {
        let server = Standalone::start(&data, &[]);
        let url = server.url("/api/v1/write");
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (stop, acked, next_t) = (stop.clone(), acked.clone(), next_t.clone());
            std::thread::spawn(move || {
                let client = reqwest::blocking::Client::new();
                let mut requests = 0;
                while !stop.load(Ordering::Relaxed) {
                    let t0 = next_t.fetch_add(SAMPLES_PER_REQUEST, Ordering::SeqCst);
                    let ts: Vec<_> = (0..SERIES)
                        .map(|i| {
                            let name = format!("s{i}");
                            let samples: Vec<(i64, f64)> = (t0..t0 + SAMPLES_PER_REQUEST)
                                .map(|t| (t, value(i, t)))
                                .collect();
                            series(&[("__name__", "crash_test"), ("series", &name)], &samples)
                        })
                        .collect();
                    match post_write(&client, &url, write_body(ts)) {
                        Ok((204, _)) => {
                            let mut a = acked.lock().unwrap();
                            for i in 0..SERIES {
                                for t in t0..t0 + SAMPLES_PER_REQUEST {
                                    a.insert((i, t), value(i, t).to_bits());
                                }
                            }
                            requests += 1;
                        }
                        Ok((status, body)) => panic!("unexpected answer {status}: {body}"),
                        // The server died under us: not acknowledged.
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
                requests
            })
        };
        std::thread::sleep(Duration::from_millis(rng.random_range(150..700)));
        server.kill9();
        kills += 1;
        stop.store(true, Ordering::Relaxed);
        let requests = writer.join().unwrap();
        assert!(
            requests > 0 || round > 0,
            "no request was acknowledged in round {round}"
        );
    }
    assert_eq!(kills, 6);

    let acked = acked.lock().unwrap();
    assert!(
        acked.len() > 1000,
        "too few acknowledged samples to mean anything: {}",
        acked.len()
    );
    let dumped = dump(&data);
    let mut stored: HashSet<(usize, i64, u64)> = HashSet::new();
    for d in &dumped {
        let series: usize = d
            .labels
            .split("series=\"s")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("unexpected series in dump: {}", d.labels));
        assert_eq!(
            d.bits,
            value(series, d.t).to_bits(),
            "a stored sample was never sent: {d:?}"
        );
        stored.insert((series, d.t, d.bits));
    }
    let missing: Vec<_> = acked
        .iter()
        .filter(|((s, t), bits)| !stored.contains(&(*s, *t, **bits)))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged samples lost (first few): {missing:?}"
    );
}
