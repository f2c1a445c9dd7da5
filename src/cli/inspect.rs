//! `inspect`: what a GGUF file holds.

use std::io::{self, Write};
use std::process::ExitCode;

use gguf_dequant::gguf::{GgufFile, TensorInfo};
use gguf_dequant::text::{escape, escape_cut, hidden};
use gguf_dequant::Result;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};
use serde::Serialize;
use serde_json::ser::{Formatter, PrettyFormatter};

/// The widest tensor name the table shows whole, in characters.
const NAME_COLUMN: usize = 64;

pub fn run(file: &GgufFile, as_json: bool) -> Result<ExitCode> {
    if as_json {
        write_json(file)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "GGUF v{}, alignment {}, tensor data at byte {}, {} metadata keys, {} tensors",
        file.version(),
        file.alignment(),
        file.data_offset(),
        file.metadata().len(),
        file.tensors().len()
    );
    if !file.metadata().is_empty() {
        outln!("\nmetadata:");
        for (k, v) in file.metadata() {
            outln!("  {} [{}] = {v}", escape(k), v.type_name());
        }
    }
    if !file.tensors().is_empty() {
        // names escaped, and cut past NAME_COLUMN characters (--json has them whole)
        let w = file
            .tensors()
            .iter()
            .map(|t| escape_cut(&t.name, NAME_COLUMN).chars().count())
            .max()
            .unwrap_or(4)
            .max(4);
        outln!("\ntensors:");
        outln!(
            "  {:<w$}  {:<8} {:<24} {:>14} {:>14}",
            "name",
            "type",
            "ne",
            "offset",
            "bytes"
        );
        for t in file.tensors() {
            let ne = format!("{:?}", t.ne);
            outln!(
                "  {:<w$}  {:<8} {:<24} {:>14} {:>14}",
                escape_cut(&t.name, NAME_COLUMN),
                t.ty.name(),
                ne,
                t.offset,
                t.nbytes
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the file's description to standard output as one pretty-printed JSON
/// object, as it goes: the metadata is never built as a JSON tree.
fn write_json(file: &GgufFile) -> Result<()> {
    let err = |e| gguf_dequant::Error::io("writing to standard output", e);
    let mut out = std::io::BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
    let mut json = serde_json::Serializer::with_formatter(&mut out, Escaping::default());
    Doc(file).serialize(&mut json).map_err(|e| err(e.into()))?;
    out.write_all(b"\n").map_err(err)?;
    out.flush().map_err(err)
}

/// serde_json's pretty output, with every character that `text::escape`
/// escapes written as `\uXXXX`: JSON escapes only the C0 controls itself,
/// and DEL, C1 controls (a CSI among them) and text-reordering characters
/// would reach a terminal raw. The strings read back are the same.
#[derive(Default)]
struct Escaping(PrettyFormatter<'static>);

impl Formatter for Escaping {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, s: &str) -> io::Result<()> {
        let mut rest = s;
        while let Some((i, c)) = rest.char_indices().find(|&(_, c)| hidden(c)) {
            w.write_all(&rest.as_bytes()[..i])?;
            for unit in c.encode_utf16(&mut [0; 2]) {
                write!(w, "\\u{unit:04x}")?;
            }
            rest = &rest[i + c.len_utf8()..];
        }
        w.write_all(rest.as_bytes())
    }
    // the rest is the pretty formatter's
    fn begin_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_array(w)
    }
    fn end_array<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array(w)
    }
    fn begin_array_value<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_array_value(w, first)
    }
    fn end_array_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_array_value(w)
    }
    fn begin_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object(w)
    }
    fn end_object<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object(w)
    }
    fn begin_object_key<W: ?Sized + Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        self.0.begin_object_key(w, first)
    }
    fn begin_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.begin_object_value(w)
    }
    fn end_object_value<W: ?Sized + Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.0.end_object_value(w)
    }
}

/// The JSON document: `{"alignment", "metadata", "tensors", "version"}`, each
/// object's keys in sorted order (as a `serde_json::Map` writes them).
struct Doc<'a>(&'a GgufFile);

impl Serialize for Doc<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let f = self.0;
        let mut m = s.serialize_map(Some(4))?;
        m.serialize_entry("alignment", &f.alignment())?;
        m.serialize_entry("metadata", &Metadata(f))?;
        m.serialize_entry("tensors", &Tensors(f.tensors()))?;
        m.serialize_entry("version", &f.version())?;
        m.end()
    }
}

/// The key-value pairs as one object, keys sorted.
struct Metadata<'a>(&'a GgufFile);

impl Serialize for Metadata<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut kvs: Vec<_> = self.0.metadata().iter().collect();
        kvs.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut m = s.serialize_map(Some(kvs.len()))?;
        for (k, v) in kvs {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

struct Tensors<'a>(&'a [TensorInfo]);

impl Serialize for Tensors<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut seq = s.serialize_seq(Some(self.0.len()))?;
        for t in self.0 {
            seq.serialize_element(&Tensor(t))?;
        }
        seq.end()
    }
}

struct Tensor<'a>(&'a TensorInfo);

impl Serialize for Tensor<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let t = self.0;
        let mut m = s.serialize_map(Some(5))?;
        m.serialize_entry("name", &t.name)?;
        m.serialize_entry("nbytes", &t.nbytes)?;
        m.serialize_entry("ne", &t.ne)?;
        m.serialize_entry("offset", &t.offset)?;
        m.serialize_entry("type", t.ty.name())?;
        m.end()
    }
}
