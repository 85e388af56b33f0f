//! Remote-write decoding: any body, as 1.0 or 2.0, snappy-compressed or
//! not, must decode or fail cleanly.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    hearth_proto::remote_write::fuzz_decode(data);
});
