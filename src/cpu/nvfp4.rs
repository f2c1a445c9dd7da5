//! PLACEHOLDER: nvfp4 is not written yet.

use super::Format;
use crate::blocks::block_nvfp4;
use crate::types::GgmlType;

pub struct NVFP4;
impl Format for NVFP4 {
    const TYPE: GgmlType = GgmlType::NVFP4;
    type Block = block_nvfp4;
    fn decode(_b: &block_nvfp4, _y: &mut [f32]) {
        todo!("nvfp4 decoder")
    }
}
