//! Errors of the StoreAPI server and client, and the two mappings between
//! them and the outside: storage errors to gRPC status codes (server side,
//! specs/storeapi.md §1) and gRPC status codes back to storage errors
//! (client side), so that a remote store fails the way a local one would.

use hearth_storage_api::Error as StorageError;
use tonic::{Code, Status};

/// What went wrong in the StoreAPI layer itself.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A message field does not make sense (unknown enum value, bad regex).
    #[error("invalid {what}: {reason}")]
    InvalidMessage { what: &'static str, reason: String },
    /// A store address that is not a URI.
    #[error("invalid store address {address:?}: {reason}")]
    InvalidAddress { address: String, reason: String },
    /// A remote store answered with a gRPC error (or could not be reached).
    #[error("store {peer}: {code:?}: {message}")]
    Rpc {
        peer: String,
        code: Code,
        message: String,
    },
    /// The gRPC server could not serve.
    #[error("serve StoreAPI: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// The storage behind the server failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A remote store's gRPC error, with the store's address for context.
    pub fn rpc(peer: &str, status: &Status) -> Self {
        Error::Rpc {
            peer: peer.to_string(),
            code: status.code(),
            message: status.message().to_string(),
        }
    }
}

/// Server side: the status a storage failure is answered with. Bad requests
/// are the caller's fault; everything the storage could not do is
/// `Internal`, except what retrying may fix (`Unavailable`) and
/// cancellations.
pub fn status_from_storage(e: &StorageError) -> Status {
    match e {
        StorageError::BadRequest(m) => Status::invalid_argument(m.clone()),
        StorageError::Unavailable(_) => Status::unavailable(e.to_string()),
        StorageError::Canceled(_) => Status::cancelled(e.to_string()),
        StorageError::Corrupt(_) | StorageError::Internal(_) => Status::internal(e.to_string()),
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        match e {
            Error::InvalidMessage { .. } => Status::invalid_argument(e.to_string()),
            Error::Storage(s) => status_from_storage(&s),
            Error::Rpc { code, .. } => Status::new(code, e.to_string()),
            Error::InvalidAddress { .. } | Error::Serve(_) => Status::internal(e.to_string()),
        }
    }
}

/// Client side: the storage error a remote store's status stands for, so
/// that the HTTP API answers a remote failure as it would a local one.
pub fn storage_from_status(peer: &str, status: &Status) -> StorageError {
    let message = format!("store {peer}: {}", status.message());
    match status.code() {
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StorageError::BadRequest(message)
        }
        Code::Unavailable | Code::ResourceExhausted => StorageError::Unavailable(message),
        Code::Cancelled | Code::DeadlineExceeded => StorageError::Canceled(message),
        Code::DataLoss => StorageError::Corrupt(message),
        _ => StorageError::Internal(message),
    }
}

impl From<Error> for StorageError {
    fn from(e: Error) -> StorageError {
        match e {
            Error::Storage(s) => s,
            Error::Rpc {
                peer,
                code,
                message,
            } => storage_from_status(&peer, &Status::new(code, message)),
            Error::InvalidMessage { .. } => StorageError::Internal(e.to_string()),
            Error::InvalidAddress { .. } => StorageError::BadRequest(e.to_string()),
            Error::Serve(_) => StorageError::Internal(e.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_errors_round_trip_through_status_codes() {
        for e in [
            StorageError::BadRequest("bad".into()),
            StorageError::Unavailable("down".into()),
            StorageError::Canceled("stop".into()),
            StorageError::Internal("boom".into()),
        ] {
            let back = storage_from_status("peer", &status_from_storage(&e));
            assert_eq!(
                std::mem::discriminant(&back),
                std::mem::discriminant(&e),
                "{e:?} came back as {back:?}"
            );
        }
        // Corrupt data is a storage failure for the caller: Internal.
        let s = status_from_storage(&StorageError::Corrupt("chunk".into()));
        assert_eq!(s.code(), Code::Internal);
    }

    #[test]
    fn invalid_messages_are_invalid_arguments() {
        let e = Error::InvalidMessage {
            what: "matcher",
            reason: "unknown type 7".into(),
        };
        assert_eq!(Status::from(e).code(), Code::InvalidArgument);
    }
}
