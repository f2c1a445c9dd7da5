//! PLACEHOLDER: iq3_s is not written yet.

use super::Format;
use crate::blocks::block_iq3_s;
use crate::types::GgmlType;

pub struct IQ3_S;
impl Format for IQ3_S {
    const TYPE: GgmlType = GgmlType::IQ3_S;
    type Block = block_iq3_s;
    fn decode(_b: &block_iq3_s, _y: &mut [f32]) {
        todo!("iq3_s decoder")
    }
}
