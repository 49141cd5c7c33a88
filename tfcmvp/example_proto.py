"""``tf.train.Example`` message classes built by protobuf alone, without TensorFlow.

The extraction workers write one ``tf.train.Example`` per video. Importing
TensorFlow just for its generated message classes costs each Beam worker
about 3 s of start-up and 450 MB of memory, which on a short job is most of
the fixed cost that keeps two workers from being twice as fast as one. The
wire format is small and stable (TensorFlow's ``feature.proto`` and
``example.proto``), so this module declares the same messages, with the same
field numbers and packing, to ``google.protobuf`` and lets it do the encoding
and decoding. Bytes written here parse with ``tf.train.Example.FromString``
and ``tf.io.parse_single_example`` (tested), and the reverse.

The declarations live in a private descriptor pool: TensorFlow registers its
own ``tensorflow.Example`` in the default pool, and the two must be able to
coexist in one process.
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_PACKAGE = "tensorflow"
_F = descriptor_pb2.FieldDescriptorProto


def _field(
    name: str,
    number: int,
    kind: int,
    label: int = _F.LABEL_OPTIONAL,
    type_name: str = "",
    oneof: int | None = None,
    packed: bool = False,
):
    field = _F(name=name, number=number, type=kind, label=label, json_name=name)
    if type_name:
        field.type_name = f".{_PACKAGE}.{type_name}"
    if oneof is not None:
        field.oneof_index = oneof
    if packed:
        field.options.packed = True
    return field


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """The messages of TensorFlow's ``example.proto`` that a ``tf.train.Example`` uses."""
    proto = descriptor_pb2.FileDescriptorProto(
        name="tfcmvp/tf_example.proto", package=_PACKAGE, syntax="proto3"
    )
    repeated = _F.LABEL_REPEATED
    proto.message_type.add(name="BytesList").field.append(
        _field("value", 1, _F.TYPE_BYTES, repeated)
    )
    proto.message_type.add(name="FloatList").field.append(
        _field("value", 1, _F.TYPE_FLOAT, repeated, packed=True)
    )
    proto.message_type.add(name="Int64List").field.append(
        _field("value", 1, _F.TYPE_INT64, repeated, packed=True)
    )

    feature = proto.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    feature.field.extend(
        [
            _field("bytes_list", 1, _F.TYPE_MESSAGE, type_name="BytesList", oneof=0),
            _field("float_list", 2, _F.TYPE_MESSAGE, type_name="FloatList", oneof=0),
            _field("int64_list", 3, _F.TYPE_MESSAGE, type_name="Int64List", oneof=0),
        ]
    )

    # map<string, Feature> feature = 1, spelled as protobuf compiles maps: a
    # repeated nested entry message with the map_entry option.
    features = proto.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.extend(
        [
            _field("key", 1, _F.TYPE_STRING),
            _field("value", 2, _F.TYPE_MESSAGE, type_name="Feature"),
        ]
    )
    features.field.append(
        _field("feature", 1, _F.TYPE_MESSAGE, repeated, type_name="Features.FeatureEntry")
    )

    proto.message_type.add(name="Example").field.append(
        _field("features", 1, _F.TYPE_MESSAGE, type_name="Features")
    )
    return proto


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file_descriptor())


def _message(name: str):
    return message_factory.GetMessageClass(_POOL.FindMessageTypeByName(f"{_PACKAGE}.{name}"))


BytesList = _message("BytesList")
FloatList = _message("FloatList")
Int64List = _message("Int64List")
Feature = _message("Feature")
Features = _message("Features")
Example = _message("Example")

__all__ = ["BytesList", "FloatList", "Int64List", "Feature", "Features", "Example"]
