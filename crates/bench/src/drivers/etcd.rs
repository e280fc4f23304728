//! etcd v3 over gRPC: `Put` and a linearizable `Range` (etcd's default,
//! `serializable = false`, which goes through the leader's read index).

use etcdv3client::pb::{request_op, PutRequest, RangeRequest, RequestOp, TxnRequest};
use etcdv3client::EtcdClient;

use super::Found;

pub struct EtcdConn {
    client: EtcdClient,
}

impl EtcdConn {
    /// One client, one HTTP/2 connection to one member: the same shape as a RESP client,
    /// so the two are compared connection for connection.
    pub async fn connect(endpoint: &str) -> Result<Self, String> {
        let uri = if endpoint.contains("://") {
            endpoint.to_string()
        } else {
            format!("http://{endpoint}")
        };
        let client = EtcdClient::new(vec![uri.clone()], None)
            .await
            .map_err(|e| format!("{uri}: connect: {e}"))?;
        let mut c = EtcdConn { client };
        // A linearizable read proves the member is in a cluster with a leader.
        c.get(b"kvbench-probe").await?;
        Ok(c)
    }

    pub async fn get(&mut self, key: &[u8]) -> Result<Found, String> {
        let req = RangeRequest {
            key: key.to_vec(),
            serializable: false,
            ..Default::default()
        };
        let resp = self.client.kv.range(req).await.map_err(|e| e.to_string())?;
        Ok(if resp.kvs.is_empty() {
            Found::Miss
        } else {
            Found::Hit
        })
    }

    pub async fn set(&mut self, key: &[u8], value: &[u8]) -> Result<(), String> {
        let req = PutRequest {
            key: key.to_vec(),
            value: value.to_vec(),
            ..Default::default()
        };
        self.client.kv.put(req).await.map_err(|e| e.to_string())?;
        Ok(())
    }

    /// One transaction of puts (etcd allows 128 operations per transaction by default).
    pub async fn set_many(&mut self, keys: &[Vec<u8>], value: &[u8]) -> Result<(), String> {
        let success = keys
            .iter()
            .map(|k| RequestOp {
                request: Some(request_op::Request::RequestPut(PutRequest {
                    key: k.clone(),
                    value: value.to_vec(),
                    ..Default::default()
                })),
            })
            .collect();
        let req = TxnRequest {
            success,
            ..Default::default()
        };
        self.client.kv.txn(req).await.map_err(|e| e.to_string())?;
        Ok(())
    }
}
