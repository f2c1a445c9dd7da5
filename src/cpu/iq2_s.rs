//! PLACEHOLDER: iq2_s is not written yet.

use super::Format;
use crate::blocks::block_iq2_s;
use crate::types::GgmlType;

pub struct IQ2_S;
impl Format for IQ2_S {
    const TYPE: GgmlType = GgmlType::IQ2_S;
    type Block = block_iq2_s;
    fn decode(_b: &block_iq2_s, _y: &mut [f32]) {
        todo!("iq2_s decoder")
    }
}
