//! PLACEHOLDER: iq4_xs is not written yet.

use super::Format;
use crate::blocks::block_iq4_xs;
use crate::types::GgmlType;

pub struct IQ4_XS;
impl Format for IQ4_XS {
    const TYPE: GgmlType = GgmlType::IQ4_XS;
    type Block = block_iq4_xs;
    fn decode(_b: &block_iq4_xs, _y: &mut [f32]) {
        todo!("iq4_xs decoder")
    }
}
