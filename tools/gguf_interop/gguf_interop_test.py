"""GGUF interop with gguf-py, both ways (`bazel test //tools/gguf_interop:gguf_interop_test`).

1. A file our writer writes (every metadata value type, nested arrays, empty arrays, a
   tensor of every type) reads back in gguf-py's GGUFReader with identical metadata
   (types, values, order) and identical tensor names, types, dims and bytes.
2. A file gguf-py's GGUFWriter writes reads back in our reader with identical values, and
   our writer produces the very same bytes for the same content.
3. The real SmolLM2 model: our reader and gguf-py agree on every metadata value and on
   every tensor's type, dims, data offset and size.

The C++ side is runtime/gguf_interop_test_tool.cc (path given as the first argument); both
sides meet in a canonical JSON form described there. Floats travel as IEEE bit patterns.
"""

import json
import math
import os
import struct
import subprocess
import sys
import tempfile
import unittest

import numpy as np

import gguf
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as VT

TOOL = None  # set from argv in __main__


def f32bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def f64bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def from_bits(type_name, bits):
    if type_name == "float32":
        return struct.unpack("<f", struct.pack("<I", bits))[0]
    return struct.unpack("<d", struct.pack("<Q", bits))[0]


def S(t, v):
    return {"type": t, "value": v}


def A(elem, items):
    return {"type": "array", "elem": elem, "items": items}


# Every value type as a scalar and as an array element, edge values included.
def metadata(for_gguf_py):
    md = [
        ("general.architecture", S("string", "llama")),
        ("t.uint8", S("uint8", 255)),
        ("t.int8", S("int8", -128)),
        ("t.uint16", S("uint16", 65535)),
        ("t.int16", S("int16", -32768)),
        ("t.uint32", S("uint32", 2**32 - 1)),
        ("t.int32", S("int32", -(2**31))),
        ("t.float32", S("float32", f32bits(-1.5e-7))),
        ("t.float32.neginf", S("float32", f32bits(-math.inf))),
        ("t.float32.negzero", S("float32", f32bits(-0.0))),
        ("t.bool.true", S("bool", True)),
        ("t.bool.false", S("bool", False)),
        ("t.string", S("string", "h\u00e9llo, \u4e16\u754c \u0000 end")),
        ("t.uint64", S("uint64", 2**64 - 1)),
        ("t.int64", S("int64", -(2**63))),
        ("t.float64", S("float64", f64bits(math.pi))),
        ("t.float64.nan", S("float64", f64bits(math.nan))),
        ("a.uint8", A("uint8", [0, 1, 254, 255])),
        ("a.int8", A("int8", [-128, -1, 0, 127])),
        ("a.uint16", A("uint16", [0, 65535])),
        ("a.int16", A("int16", [-32768, 32767])),
        ("a.uint32", A("uint32", [0, 2**32 - 1, 7])),
        ("a.int32", A("int32", [-5, 0, 2**31 - 1])),
        ("a.float32", A("float32", [f32bits(x) for x in (0.5, -0.0, 1e-38, 3.4e38)])),
        ("a.bool", A("bool", [True, False, True])),
        ("a.string", A("string", ["<s>", "", "\u0120the", "a b"])),
        ("a.uint64", A("uint64", [0, 2**64 - 1])),
        ("a.int64", A("int64", [-(2**63), 2**63 - 1])),
        ("a.float64", A("float64", [f64bits(x) for x in (1e300, -2.5, 5e-324)])),
        # gguf-py's writer infers inner element types (int -> int32, float -> float32,
        # str -> string) and cannot write empty arrays.
        ("n.int32", A("array", [A("int32", [1, 2, 3]), A("int32", [-4])])),
        ("n.string", A("array", [A("string", ["x", "yz"]), A("string", [""])])),
        ("n.float32", A("array", [A("array", [A("float32", [f32bits(0.25)])])])),
    ]
    if not for_gguf_py:
        md += [
            ("a.empty.int32", A("int32", [])),
            ("a.empty.string", A("string", [])),
            ("n.mixed", A("array", [A("uint8", [9, 8]), A("int32", []), A("float64", [f64bits(-1.0)])])),
            ("n.empty", A("array", [])),
        ]
    return [{"key": k, "value": v} for k, v in md]


TENSOR_TYPES = None  # every type our reader takes (the format table + converted types), from the tool


def tensor_types():
    global TENSOR_TYPES
    if TENSOR_TYPES is None:
        table = json.loads(run_tool("formats"))
        ids = [f["gguf_type"] for f in table["formats"]]
        TENSOR_TYPES = [Q(i) for i in sorted(set(ids), key=ids.index)]
    return TENSOR_TYPES


def tensors():
    rng = np.random.default_rng(1234)
    out = []
    for qt in tensor_types():
        block, type_size = gguf.GGML_QUANT_SIZES[qt]
        rows, cols = 3, 2 * max(block, 32)
        if qt == Q.F32:
            data = rng.standard_normal(rows * cols).astype(np.float32).tobytes()
        elif qt == Q.F16:
            data = rng.standard_normal(rows * cols).astype(np.float16).tobytes()
        else:  # raw block bytes; interop is about bytes, not their meaning
            data = rng.integers(0, 256, rows * cols // block * type_size, dtype=np.uint8).tobytes()
        out.append({"name": "w." + qt.name, "type": int(qt), "dims": [cols, rows], "hex": data.hex()})
    out.append({"name": "v.norm", "type": int(Q.F32), "dims": [32],
                "hex": rng.standard_normal(32).astype(np.float32).tobytes().hex()})
    return out


# ---- gguf-py reader -> canonical JSON -------------------------------------------------------

def scalar_json(vtype, x):
    if vtype == VT.BOOL:
        return bool(x)
    if vtype == VT.FLOAT32:
        return int(np.asarray(x, dtype=np.float32).view(np.uint32))
    if vtype == VT.FLOAT64:
        return int(np.asarray(x, dtype=np.float64).view(np.uint64))
    return int(x)


def decode(parts, i, vtype):
    """Decodes one value of `vtype` starting at parts[i]; returns (canonical, next i)."""
    if vtype == VT.STRING:
        return bytes(parts[i + 1]).decode("utf-8"), i + 2
    if vtype == VT.ARRAY:
        etype = VT(int(parts[i][0]))
        n = int(parts[i + 1][0])
        i += 2
        items = []
        for _ in range(n):
            if etype == VT.ARRAY:
                item, i = decode(parts, i, VT.ARRAY)
            elif etype == VT.STRING:
                item, i = decode(parts, i, VT.STRING)
            else:
                item, i = scalar_json(etype, parts[i][0]), i + 1
            items.append(item)
        return {"type": "array", "elem": type_name(etype), "items": items}, i
    return scalar_json(vtype, parts[i][0]), i + 1


def type_name(vt):
    return vt.name.lower()


def value_json(field):
    vtype = field.types[0]
    value, end = decode(field.parts, 3, vtype)  # parts: key length, key, value type, value...
    assert end == len(field.parts), field.name
    if vtype == VT.ARRAY:
        return value
    return {"type": type_name(vtype), "value": value}


def read_with_gguf_py(path, with_data=True):
    r = gguf.GGUFReader(path)
    md = [{"key": k, "value": value_json(f)} for k, f in r.fields.items() if not k.startswith("GGUF.")]
    ts = []
    for t in r.tensors:
        jt = {"name": t.name, "type": int(t.tensor_type), "dims": [int(d) for d in t.shape],
              "offset": int(t.data_offset - r.data_offset), "size": int(t.n_bytes)}
        if with_data:
            jt["hex"] = t.data.tobytes().hex()
        ts.append(jt)
    return {"alignment": int(r.alignment), "data_offset": int(r.data_offset), "metadata": md,
            "tensors": ts}


# ---- gguf-py writer from the canonical JSON -------------------------------------------------

def py_scalar(type_name, x):
    if type_name in ("float32", "float64"):
        return from_bits(type_name, x)
    return x


def py_value(v):
    """Canonical JSON value -> the Python value gguf-py's writer packs."""
    if v["type"] != "array":
        return py_scalar(v["type"], v["value"])
    if v["elem"] == "array":
        return [py_value(x) for x in v["items"]]
    return [py_scalar(v["elem"], x) for x in v["items"]]


def write_with_gguf_py(path, md, ts):
    w = gguf.GGUFWriter(path, arch="llama")  # writes general.architecture first
    for kv in md:
        key, v = kv["key"], kv["value"]
        if key == "general.architecture":
            assert v["value"] == "llama"
            continue
        if v["type"] == "array":
            w.add_key_value(key, py_value(v), VT.ARRAY, sub_type=VT[v["elem"].upper()])
        else:
            w.add_key_value(key, py_value(v), VT[v["type"].upper()])
    for t in ts:
        qt = Q(t["type"])
        data = bytes.fromhex(t["hex"])
        shape = tuple(reversed(t["dims"][1:])) + (-1,)  # numpy order; last axis = row
        if qt == Q.F32:
            w.add_tensor(t["name"], np.frombuffer(data, np.float32).reshape(shape))
        elif qt == Q.F16:
            w.add_tensor(t["name"], np.frombuffer(data, np.float16).reshape(shape))
        else:
            w.add_tensor(t["name"], np.frombuffer(data, np.uint8).reshape(shape), raw_dtype=qt)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def run_tool(*args):
    p = subprocess.run([TOOL, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError("tool %s failed (%d): %s" % (args, p.returncode, p.stderr))
    return p.stdout


def model_path():
    cache = os.environ.get("FK_CACHE") or os.path.join(os.environ.get("HOME", "/root"), ".cache", "fused-kernels")
    return os.path.join(cache, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")


class Interop(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.tmp = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))

    def check_tensors(self, got, want):
        self.assertEqual([t["name"] for t in got], [t["name"] for t in want])
        for g, w in zip(got, want):
            self.assertEqual((g["type"], g["dims"], g["hex"]), (w["type"], w["dims"], w["hex"]), g["name"])
            self.assertEqual(g["offset"] % 32, 0)

    def test_ours_reads_back_in_gguf_py(self):
        md, ts = metadata(for_gguf_py=False), tensors()
        spec = os.path.join(self.tmp, "spec.json")
        with open(spec, "w") as f:
            json.dump({"metadata": md, "tensors": ts}, f)
        out = os.path.join(self.tmp, "ours.gguf")
        run_tool("write", spec, out)
        got = read_with_gguf_py(out)
        self.assertEqual(got["metadata"], md)
        self.assertEqual(len(got["tensors"]), len(tensor_types()) + 1)
        self.check_tensors(got["tensors"], ts)
        # And our own reader agrees with itself and with gguf-py on the layout.
        ours = json.loads(run_tool("dump", out))
        self.assertEqual(ours["metadata"], md)
        self.assertEqual(ours["data_offset"], got["data_offset"])
        self.check_tensors(ours["tensors"], ts)

    def test_gguf_py_file_reads_back_in_ours(self):
        md, ts = metadata(for_gguf_py=True), tensors()
        path = os.path.join(self.tmp, "theirs.gguf")
        write_with_gguf_py(path, md, ts)
        ours = json.loads(run_tool("dump", path))
        self.assertEqual(ours["version"], 3)
        self.assertEqual(ours["metadata"], md)
        self.check_tensors(ours["tensors"], ts)
        # Our writer, given the same content, writes the very same bytes.
        spec = os.path.join(self.tmp, "spec.json")
        with open(spec, "w") as f:
            json.dump({"metadata": md, "tensors": ts}, f)
        mine = os.path.join(self.tmp, "mine.gguf")
        run_tool("write", spec, mine)
        with open(path, "rb") as a, open(mine, "rb") as b:
            self.assertEqual(a.read(), b.read())

    def test_format_table_matches_gguf_py(self):
        """Every row of kernels/formats.inc against gguf-py's constants (an independent source):
        the type's name and id, its block size in elements and bytes, llama.cpp's file type."""
        table = json.loads(run_tool("formats"))["formats"]
        self.assertEqual(table[0]["name"], "F32")
        names = [f["name"] for f in table]
        self.assertEqual(len(names), len(set(names)))
        for f in table:
            qt = Q(f["gguf_type"])
            self.assertEqual(qt.name, f["name"])
            self.assertEqual(gguf.GGML_QUANT_SIZES[qt], (f["block_elems"], f["block_bytes"]), f["name"])
            self.assertAlmostEqual(f["bits_per_weight"], 8.0 * f["block_bytes"] / f["block_elems"])
            # ggml's own spelling: lower case but for the K of the K-quants.
            self.assertEqual(f["ggml_name"], f["name"].lower().replace("_k", "_K"), f["name"])
            if f["llama_ftype"] >= 0:
                ft = gguf.LlamaFileType(f["llama_ftype"]).name
                want = {"F32": ["ALL_F32"]}.get(f["name"], ["MOSTLY_" + f["name"], "MOSTLY_%s_S" % f["name"]])
                self.assertIn(ft, want, f["name"])
            else:  # only Q8_K, ggml's activation type, has no llama.cpp file type
                self.assertFalse(any(ft.name.startswith("MOSTLY_" + f["name"]) for ft in gguf.LlamaFileType))
            self.assertIn(f["act_format"], names)
            # The fallback has a smaller block (so the chain ends), F32 is its own.
            fb = table[names.index(f["fallback"])]
            if f["block_elems"] == 1:  # the float formats: every row fits
                self.assertEqual(f["act_format"], "F32")
            else:
                self.assertLess(fb["block_elems"], f["block_elems"], f["name"])

    def test_real_model_agrees_with_gguf_py(self):
        path = model_path()
        self.assertTrue(os.path.exists(path), "%s is missing; run tools/fetch_model (tools/bazel runs it for you)" % path)
        ours = json.loads(run_tool("dump", path, "--no-data"))
        theirs = read_with_gguf_py(path, with_data=False)
        self.assertEqual(len(ours["metadata"]), 33)
        self.assertEqual(ours["metadata"], theirs["metadata"])
        self.assertEqual(ours["alignment"], theirs["alignment"])
        self.assertEqual(ours["data_offset"], theirs["data_offset"])
        self.assertEqual(len(ours["tensors"]), 272)
        self.assertEqual(ours["tensors"], theirs["tensors"])


if __name__ == "__main__":
    TOOL = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=2)
