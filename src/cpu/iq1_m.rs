//! PLACEHOLDER: iq1_m is not written yet.

use super::Format;
use crate::blocks::block_iq1_m;
use crate::types::GgmlType;

pub struct IQ1_M;
impl Format for IQ1_M {
    const TYPE: GgmlType = GgmlType::IQ1_M;
    type Block = block_iq1_m;
    fn decode(_b: &block_iq1_m, _y: &mut [f32]) {
        todo!("iq1_m decoder")
    }
}
