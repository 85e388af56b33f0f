//! The querier's fan-out over stores (`hearth query`).
