//! The backends a test binary has, for the parity tests that run on each: included with
//! `#[path = "support/devices.rs"] mod devices;`.

use burn::tensor::Device;

/// flex, and LibTorch on CPU when built with the `tch` feature.
pub fn devices() -> Vec<(&'static str, Device)> {
    #[allow(unused_mut)]
    let mut devices = vec![("flex", Device::flex())];
    #[cfg(feature = "tch")]
    #[allow(deprecated)]
    devices.push(("tch:cpu", Device::libtorch()));
    devices
}
