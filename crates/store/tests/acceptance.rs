//! The StoreAPI acceptance suite (hearth_storeapi::acceptance) against the
//! store gateway: the dataset cut into two blocks, uploaded with external
//! labels to a FILESYSTEM bucket, served by `StoreServer` over a
//! `BucketStore` on a loopback port.

mod support;

use std::sync::Arc;

use hearth_model::Labels;
use hearth_storage_api::SeriesSamples;
use hearth_storeapi::acceptance::{self, DATASET_END, DATASET_START};
use hearth_storeapi::{serve, StoreServer};
use support::*;
use tokio::sync::oneshot;

/// The dataset's samples within `[mint, maxt)`, series without any left
/// out.
fn slice(data: &[SeriesSamples], mint: i64, maxt: i64) -> Vec<(Labels, Vec<hearth_model::Sample>)> {
    data.iter()
        .map(|s| {
            let samples: Vec<_> = s
                .samples
                .iter()
                .filter(|x| x.t >= mint && x.t < maxt)
                .copied()
                .collect();
            (s.labels.clone(), samples)
        })
        .filter(|(_, s)| !s.is_empty())
        .collect()
}

#[tokio::test]
async fn the_store_gateway_passes_the_storeapi_acceptance_suite() {
    let fx = Fixture::new();
    let data = acceptance::dataset();
    let external = Labels::new([("cluster", "c1"), ("replica", "a")]);
    let ext: Vec<(&str, &str)> = external.iter().map(|l| (l.name, l.value)).collect();
    let middle = DATASET_START + HOUR;
    for (mint, maxt) in [(DATASET_START, middle), (middle, DATASET_END + 1)] {
        fx.add_block(mint, maxt, &slice(&data, mint, maxt), &ext)
            .await;
    }
    let store = fx.store(test_options());
    assert_eq!(store.sync().await.unwrap().blocks, 2);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let info_store = store.clone();
    // The server removes replica labels itself, so it can announce it.
    let info: hearth_storeapi::InfoProvider = Arc::new(move || {
        let mut info = info_store.store_info();
        info.supports_without_replica_labels = true;
        info
    });
    // External labels are per block, applied by the store: none at the server.
    let server = StoreServer::new(Arc::new(store.clone()), Labels::empty(), info);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, server, async {
        let _ = stopped.await;
    }));
    let result = acceptance::check(&addr, &external, DATASET_START, DATASET_END).await;
    let half = acceptance::check(&addr, &external, middle - 7 * MIN, DATASET_END).await;
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    if let Err(failures) = result.and(half) {
        panic!("acceptance failures:\n{failures}");
    }
    assert_eq!(store.stats().block_query_failures, 0);
}
