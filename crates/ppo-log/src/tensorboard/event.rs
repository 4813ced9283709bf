//! `Event` protocol buffers encoded by hand, and their TFRecord framing.
//!
//! The messages (field numbers from TensorFlow's `event.proto`, `summary.proto`,
//! `tensor.proto`):
//!
//! ```text
//! Event           { double wall_time = 1; int64 step = 2; string file_version = 3;
//!                   Summary summary = 5; }
//! Summary         { repeated Value value = 1; }
//! Summary.Value   { string tag = 1; float simple_value = 2; TensorProto tensor = 8;
//!                   SummaryMetadata metadata = 9; }
//! SummaryMetadata { PluginData plugin_data = 1; }  PluginData { string plugin_name = 1; }
//! TensorProto     { DataType dtype = 1; TensorShapeProto tensor_shape = 2;
//!                   repeated bytes string_val = 8; }
//! ```
//!
//! Fields are written in field-number order and proto3 defaults (a zero step) are left
//! out, so the bytes equal those of the reference protobuf serialiser. A TFRecord is
//! `u64 length (LE) | u32 masked_crc32c(length bytes) | data | u32 masked_crc32c(data)`.

/// Protobuf wire types used here.
const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LENGTH_DELIMITED: u8 = 2;
const FIXED32: u8 = 5;

/// `DataType::DT_STRING` of `types.proto`.
const DT_STRING: u64 = 7;
/// Plugin that shows string tensors as (markdown) text.
const TEXT_PLUGIN: &str = "text";

/// Added to the rotated CRC by TFRecord's masking.
const CRC_MASK_DELTA: u32 = 0xa282_ead8;

/// CRC-32C of `data`, masked as TFRecord stores it: rotated right by 15 bits plus a
/// constant, so a CRC of data that embeds CRCs stays well distributed.
pub fn masked_crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
        .rotate_right(15)
        .wrapping_add(CRC_MASK_DELTA)
}

/// `data` as one TFRecord: length, its masked CRC, the data, the data's masked CRC.
pub(crate) fn frame(data: &[u8]) -> Vec<u8> {
    let length = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&length);
    out.extend_from_slice(&masked_crc32c(&length).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
    out
}

/// The first event of every event file: `file_version` only.
pub(crate) fn file_version_event(wall_time: f64, file_version: &str) -> Vec<u8> {
    let mut event = Message::default();
    event.double(1, wall_time);
    event.bytes(3, file_version.as_bytes());
    event.0
}

/// One event holding every `(tag, value)` as a scalar (`simple_value`, a 32-bit float) at
/// `step`.
pub(crate) fn scalars_event(wall_time: f64, step: u64, values: &[(String, f64)]) -> Vec<u8> {
    let mut summary = Message::default();
    for (tag, value) in values {
        let mut entry = Message::default();
        entry.bytes(1, tag.as_bytes());
        entry.float(2, *value as f32);
        summary.message(1, &entry);
    }
    summary_event(wall_time, step, &summary)
}

/// One event holding `text` under `tag` for TensorBoard's text plugin: a scalar string
/// tensor with the plugin named in the value's metadata.
pub(crate) fn text_event(wall_time: f64, step: u64, tag: &str, text: &str) -> Vec<u8> {
    let mut tensor = Message::default();
    tensor.varint(1, DT_STRING);
    tensor.message(2, &Message::default()); // shape [] (a scalar)
    tensor.bytes(8, text.as_bytes());
    let mut plugin = Message::default();
    plugin.bytes(1, TEXT_PLUGIN.as_bytes());
    let mut metadata = Message::default();
    metadata.message(1, &plugin);
    let mut entry = Message::default();
    entry.bytes(1, tag.as_bytes());
    entry.message(8, &tensor);
    entry.message(9, &metadata);
    let mut summary = Message::default();
    summary.message(1, &entry);
    summary_event(wall_time, step, &summary)
}

fn summary_event(wall_time: f64, step: u64, summary: &Message) -> Vec<u8> {
    let mut event = Message::default();
    event.double(1, wall_time);
    if step != 0 {
        event.varint(2, step);
    }
    event.message(5, summary);
    event.0
}

/// A protobuf message being serialised.
#[derive(Default)]
struct Message(Vec<u8>);

impl Message {
    fn raw_varint(&mut self, mut value: u64) {
        while value >= 0x80 {
            self.0.push((value as u8) | 0x80);
            value >>= 7;
        }
        self.0.push(value as u8);
    }

    fn key(&mut self, field: u32, wire_type: u8) {
        self.raw_varint((u64::from(field) << 3) | u64::from(wire_type));
    }

    fn varint(&mut self, field: u32, value: u64) {
        self.key(field, VARINT);
        self.raw_varint(value);
    }

    fn double(&mut self, field: u32, value: f64) {
        self.key(field, FIXED64);
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn float(&mut self, field: u32, value: f32) {
        self.key(field, FIXED32);
        self.0.extend_from_slice(&value.to_le_bytes());
    }

    fn bytes(&mut self, field: u32, bytes: &[u8]) {
        self.key(field, LENGTH_DELIMITED);
        self.raw_varint(bytes.len() as u64);
        self.0.extend_from_slice(bytes);
    }

    fn message(&mut self, field: u32, message: &Message) {
        self.bytes(field, &message.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn masked_crc32c_of_known_inputs() {
        // CRC-32C("123456789") is the standard check value 0xe3069283; rotated right by 15
        // bits it is 0x2507c60d, plus 0xa282ead8 gives 0xc78ab0e5.
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(0xe306_9283u32.rotate_right(15), 0x2507_c60d);
        assert_eq!(masked_crc32c(b"123456789"), 0xc78a_b0e5);
        // The CRC of nothing is 0: only the delta is left.
        assert_eq!(masked_crc32c(b""), 0xa282_ead8);
    }

    #[test]
    fn varints_take_seven_bits_a_byte() {
        let mut m = Message::default();
        m.raw_varint(1);
        m.raw_varint(300);
        m.raw_varint(u64::from(u32::MAX) + 1);
        assert_eq!(hex(&m.0), "01ac028080808010");
        // 300 = 0b10_0101100 -> 0xac 0x02; 2^32 -> four 0x80 then 0x10.
        assert_eq!(&m.0[3..], [0x80, 0x80, 0x80, 0x80, 0x10]);
    }

    #[test]
    fn file_version_record_by_hand() {
        // Event{wall_time: 1.5, file_version: "brain.Event:2"}:
        // 09 | 1.5 as LE f64 (3ff8000000000000) | 1a 0d | the 13 bytes of the version.
        let event = file_version_event(1.5, "brain.Event:2");
        assert_eq!(
            hex(&event),
            "09000000000000f83f1a0d627261696e2e4576656e743a32"
        );
        // 24 bytes: length 0x18, masked CRCs as TensorBoard's RecordWriter writes them.
        assert_eq!(
            hex(&frame(&event)),
            "1800000000000000a37f4b22\
             09000000000000f83f1a0d627261696e2e4576656e743a32\
             2a28646c"
        );
    }

    #[test]
    fn scalar_record_by_hand() {
        // Event{wall_time: 2, step: 3, summary: {value: [{tag: "r", simple_value: 0.25}]}}:
        // 09 <2.0> | 10 03 | 2a 0a (summary, 10 bytes) 0a 08 (value, 8 bytes)
        // 0a 01 'r' | 15 <0.25 as LE f32: 0000803e>.
        let event = scalars_event(2.0, 3, &[("r".to_owned(), 0.25)]);
        assert_eq!(
            hex(&event),
            "09000000000000004010032a0a0a080a0172150000803e"
        );
        assert_eq!(
            hex(&frame(&event)),
            "1700000000000000e7cef81e\
             09000000000000004010032a0a0a080a0172150000803e\
             6440a3ca"
        );
    }

    #[test]
    fn text_record_by_hand() {
        // Event{wall_time: 2, summary: {value: [{tag: "config", tensor: {dtype: DT_STRING,
        // tensor_shape: {}, string_val: ["hi"]}, metadata: {plugin_data: {plugin_name:
        // "text"}}}]}}, step 0 left out as proto3 does.
        let event = text_event(2.0, 0, "config", "hi");
        assert_eq!(
            hex(&event),
            "0900000000000000402a1e0a1c0a06636f6e666967420808071200420268694a080a060a0474657874"
        );
    }
}
