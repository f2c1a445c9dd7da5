//! PLACEHOLDER: mxfp4 is not written yet.

use super::Format;
use crate::blocks::block_mxfp4;
use crate::types::GgmlType;

pub struct MXFP4;
impl Format for MXFP4 {
    const TYPE: GgmlType = GgmlType::MXFP4;
    type Block = block_mxfp4;
    fn decode(_b: &block_mxfp4, _y: &mut [f32]) {
        todo!("mxfp4 decoder")
    }
}
