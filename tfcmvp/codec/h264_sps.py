"""Reading ``max_num_ref_frames`` from an H.264 sequence parameter set.

PyAV does not expose the decoder's reference-frame count, so
:func:`max_num_ref_frames` parses the SPS (ITU-T H.264 section 7.3.2.1.1)
from the stream's extradata (``avcC`` in MP4/MKV) or from an Annex B byte
stream (a raw ``.h264`` file's first packet). Only the fields up to
``max_num_ref_frames`` are read.
"""

from __future__ import annotations

from typing import Iterator, Optional

# Profiles whose SPS carries chroma format, bit depths and scaling lists.
_HIGH_PROFILES = {100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135}
_SPS_NAL_TYPE = 7


class _BitReader:
    """MSB-first bit reader over an RBSP with Exp-Golomb codes."""

    def __init__(self, data: bytes):
        self._data = data
        self._pos = 0

    def bit(self) -> int:
        byte = self._pos >> 3
        if byte >= len(self._data):
            raise ValueError("SPS ended early")
        value = (self._data[byte] >> (7 - (self._pos & 7))) & 1
        self._pos += 1
        return value

    def bits(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = (value << 1) | self.bit()
        return value

    def ue(self) -> int:
        zeros = 0
        while self.bit() == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad Exp-Golomb code in SPS")
        return (1 << zeros) - 1 + self.bits(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


def _unescape(nal: bytes) -> bytes:
    """Removes emulation-prevention bytes (00 00 03 -> 00 00)."""
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def _skip_scaling_list(reader: _BitReader, size: int) -> None:
    last, next_scale = 8, 8
    for _ in range(size):
        if next_scale != 0:
            next_scale = (last + reader.se() + 256) % 256
        last = next_scale if next_scale != 0 else last


def parse_sps_max_num_ref_frames(nal: bytes) -> int:
    """``max_num_ref_frames`` of one SPS NAL unit (header byte included)."""
    reader = _BitReader(_unescape(nal[1:]))
    profile_idc = reader.bits(8)
    reader.bits(16)  # constraint flags, level_idc
    reader.ue()  # seq_parameter_set_id
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = reader.ue()
        if chroma_format_idc == 3:
            reader.bit()  # separate_colour_plane_flag
        reader.ue()  # bit_depth_luma_minus8
        reader.ue()  # bit_depth_chroma_minus8
        reader.bit()  # qpprime_y_zero_transform_bypass_flag
        if reader.bit():  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if reader.bit():
                    _skip_scaling_list(reader, 16 if i < 6 else 64)
    reader.ue()  # log2_max_frame_num_minus4
    pic_order_cnt_type = reader.ue()
    if pic_order_cnt_type == 0:
        reader.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif pic_order_cnt_type == 1:
        reader.bit()  # delta_pic_order_always_zero_flag
        reader.se()  # offset_for_non_ref_pic
        reader.se()  # offset_for_top_to_bottom_field
        for _ in range(reader.ue()):  # num_ref_frames_in_pic_order_cnt_cycle
            reader.se()
    return reader.ue()


def _annexb_nals(data: bytes) -> Iterator[bytes]:
    """NAL units of an Annex B byte stream (split on 00 00 01 start codes)."""
    parts = data.split(b"\x00\x00\x01")
    for part in parts[1:]:
        yield part.rstrip(b"\x00") if part else part


def _avcc_sps(extradata: bytes) -> Iterator[bytes]:
    """SPS NAL units of an ``AVCDecoderConfigurationRecord``."""
    count = extradata[5] & 0x1F
    pos = 6
    for _ in range(count):
        length = int.from_bytes(extradata[pos : pos + 2], "big")
        yield extradata[pos + 2 : pos + 2 + length]
        pos += 2 + length


def max_num_ref_frames(data: Optional[bytes]) -> Optional[int]:
    """The largest ``max_num_ref_frames`` over the SPS units in ``data``.

    Args:
      data: ``avcC`` extradata (first byte 1) or Annex B bytes (extradata or
        a packet of a raw stream); None or empty gives None.
    Returns:
      The count, or None when ``data`` holds no parsable SPS.
    """
    if not data:
        return None
    data = bytes(data)
    try:
        if data[0] == 1 and len(data) > 6:
            nals = list(_avcc_sps(data))
        else:
            nals = [n for n in _annexb_nals(data) if n and (n[0] & 0x1F) == _SPS_NAL_TYPE]
        counts = [parse_sps_max_num_ref_frames(n) for n in nals if n]
    except (ValueError, IndexError):
        return None
    return max(counts) if counts else None
