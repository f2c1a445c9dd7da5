//! PLACEHOLDER: iq2_xxs is not written yet.

use super::Format;
use crate::blocks::block_iq2_xxs;
use crate::types::GgmlType;

pub struct IQ2_XXS;
impl Format for IQ2_XXS {
    const TYPE: GgmlType = GgmlType::IQ2_XXS;
    type Block = block_iq2_xxs;
    fn decode(_b: &block_iq2_xxs, _y: &mut [f32]) {
        todo!("iq2_xxs decoder")
    }
}
