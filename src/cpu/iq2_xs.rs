//! PLACEHOLDER: iq2_xs is not written yet.

use super::Format;
use crate::blocks::block_iq2_xs;
use crate::types::GgmlType;

pub struct IQ2_XS;
impl Format for IQ2_XS {
    const TYPE: GgmlType = GgmlType::IQ2_XS;
    type Block = block_iq2_xs;
    fn decode(_b: &block_iq2_xs, _y: &mut [f32]) {
        todo!("iq2_xs decoder")
    }
}
