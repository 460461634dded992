//! The safetensors file format (Hugging Face's; `safetensors.torch.load_file` and
//! `safetensors.numpy.load_file` read it), written for model weights a tracker attaches:
//! an 8-byte little-endian header length N, N bytes of JSON (padded with spaces to a
//! multiple of 8) mapping each tensor's name to its dtype, shape and `[begin, end)` byte
//! offsets into the data that follows, plus an optional `__metadata__` map of strings;
//! then the tensors' little-endian bytes, contiguous, in order.

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// One f32 tensor: its name, shape and little-endian bytes.
pub struct F32Tensor<'a> {
    pub name: &'a str,
    pub shape: Vec<usize>,
    pub bytes: &'a [u8],
}

/// The file holding `tensors` (in order) and `metadata`. Errors when a tensor's bytes do
/// not match its shape or two tensors share a name.
pub fn encode(tensors: &[F32Tensor], metadata: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let mut header = Map::new();
    if !metadata.is_empty() {
        header.insert("__metadata__".into(), json!(metadata));
    }
    let mut offset = 0usize;
    for t in tensors {
        let want = t.shape.iter().product::<usize>() * 4;
        if t.bytes.len() != want {
            bail!(
                "tensor '{}' has {} bytes, its shape {:?} needs {want}",
                t.name,
                t.bytes.len(),
                t.shape
            );
        }
        if t.name == "__metadata__" || header.contains_key(t.name) {
            bail!("tensor name '{}' is used twice or reserved", t.name);
        }
        header.insert(
            t.name.to_string(),
            json!({"dtype": "F32", "shape": t.shape, "data_offsets": [offset, offset + want]}),
        );
        offset += want;
    }
    let mut head = serde_json::to_vec(&Value::Object(header))?;
    head.resize(head.len().div_ceil(8) * 8, b' ');
    let mut out = Vec::with_capacity(8 + head.len() + offset);
    out.extend_from_slice(&(head.len() as u64).to_le_bytes());
    out.extend_from_slice(&head);
    for t in tensors {
        out.extend_from_slice(t.bytes);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_is_the_documented_one() -> Result<()> {
        let a: Vec<u8> = [1.0f32, -2.5]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let empty: Vec<u8> = Vec::new();
        let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
        let file = encode(
            &[
                F32Tensor {
                    name: "w",
                    shape: vec![2],
                    bytes: &a,
                },
                F32Tensor {
                    name: "skip",
                    shape: vec![0],
                    bytes: &empty,
                },
            ],
            &meta,
        )?;
        let n = u64::from_le_bytes(file[..8].try_into()?) as usize;
        assert_eq!(n % 8, 0);
        assert_eq!(file.len(), 8 + n + 8);
        let header: Value = serde_json::from_slice(&file[8..8 + n])?;
        assert_eq!(header["__metadata__"]["format"], "pt");
        assert_eq!(header["w"]["dtype"], "F32");
        assert_eq!(header["w"]["shape"], json!([2]));
        assert_eq!(header["w"]["data_offsets"], json!([0, 8]));
        assert_eq!(header["skip"]["data_offsets"], json!([8, 8]));
        assert_eq!(&file[8 + n..], &a[..]);
        assert!(
            encode(
                &[F32Tensor {
                    name: "bad",
                    shape: vec![3],
                    bytes: &a
                }],
                &meta
            )
            .is_err()
        );
        Ok(())
    }
}
