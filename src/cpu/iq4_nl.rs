//! PLACEHOLDER: iq4_nl is not written yet.

use super::Format;
use crate::blocks::block_iq4_nl;
use crate::types::GgmlType;

pub struct IQ4_NL;
impl Format for IQ4_NL {
    const TYPE: GgmlType = GgmlType::IQ4_NL;
    type Block = block_iq4_nl;
    fn decode(_b: &block_iq4_nl, _y: &mut [f32]) {
        todo!("iq4_nl decoder")
    }
}
