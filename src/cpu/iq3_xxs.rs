//! PLACEHOLDER: iq3_xxs is not written yet.

use super::Format;
use crate::blocks::block_iq3_xxs;
use crate::types::GgmlType;

pub struct IQ3_XXS;
impl Format for IQ3_XXS {
    const TYPE: GgmlType = GgmlType::IQ3_XXS;
    type Block = block_iq3_xxs;
    fn decode(_b: &block_iq3_xxs, _y: &mut [f32]) {
        todo!("iq3_xxs decoder")
    }
}
