//! PLACEHOLDER: iq1_s is not written yet.

use super::Format;
use crate::blocks::block_iq1_s;
use crate::types::GgmlType;

pub struct IQ1_S;
impl Format for IQ1_S {
    const TYPE: GgmlType = GgmlType::IQ1_S;
    type Block = block_iq1_s;
    fn decode(_b: &block_iq1_s, _y: &mut [f32]) {
        todo!("iq1_s decoder")
    }
}
