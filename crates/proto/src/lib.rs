//! Generated `atende.v1` protobuf messages and gRPC services, plus the encoded descriptor
//! set that every server registers with reflection.

#[allow(clippy::all, clippy::pedantic)]
pub mod v1 {
    tonic::include_proto!("atende.v1");
}

/// The encoded `FileDescriptorSet` of `atende.v1`, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/atende_descriptor.bin"));
