//! A fake DNS server on UDP loopback for discovery tests (the scrape
//! discovery's `dns_sd_configs`, the querier's `dns+`/`dnssrv+` endpoints).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use hickory_resolver::proto::op::{Message, ResponseCode};
use hickory_resolver::proto::rr::{RData, Record, RecordType};
use tokio::net::UdpSocket;

/// The fake server's zone: (name with trailing dot, type) to records, or
/// to an error response code.
pub type Zone = Arc<Mutex<HashMap<(String, RecordType), Result<Vec<RData>, ResponseCode>>>>;

/// A UDP DNS server answering from `zone`; unknown names get NXDOMAIN.
pub async fn serve(zone: Zone) -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let address = socket.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buffer = [0u8; 4096];
        loop {
            let Ok((len, peer)) = socket.recv_from(&mut buffer).await else {
                return;
            };
            let Ok(query) = Message::from_vec(&buffer[..len]) else {
                continue;
            };
            let mut response = Message::response(query.metadata.id, query.metadata.op_code);
            response.metadata.recursion_desired = query.metadata.recursion_desired;
            response.metadata.recursion_available = true;
            response.queries = query.queries.clone();
            if let Some(q) = query.queries.first() {
                let key = (q.name().to_string().to_ascii_lowercase(), q.query_type());
                match zone.lock().unwrap().get(&key) {
                    Some(Ok(records)) => {
                        for data in records {
                            response.answers.push(Record::from_rdata(
                                q.name().clone(),
                                60,
                                data.clone(),
                            ));
                        }
                    }
                    Some(Err(code)) => response.metadata.response_code = *code,
                    None => response.metadata.response_code = ResponseCode::NXDomain,
                }
            }
            let bytes = response.to_vec().unwrap();
            let _ = socket.send_to(&bytes, peer).await;
        }
    });
    address
}
