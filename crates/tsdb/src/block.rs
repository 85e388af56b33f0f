//! Block directories in Prometheus format. (being written)
