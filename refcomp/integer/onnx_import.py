"""Import a quantized ONNX model (QDQ format, e.g. from ONNX Runtime's
``onnxruntime.quantization.quantize_static``) as a refcomp integer model.

The file format layer (:mod:`refcomp.io.onnx`) imports float graphs and knows no algorithm;
this module reads the quantization on top of it:

1. every DequantizeLinear of a constant (weights, int32 biases) is recorded and replaced by
   its float value; every QuantizeLinear -> DequantizeLinear pair on an activation is
   recorded as that tensor's (scale, zero point) and removed;
2. the stripped float graph is imported by :func:`refcomp.io.onnx.load` (layers, residual
   blocks);
3. each dense / conv2d layer (in graph order) gets an :class:`IntegerLinear` made of the
   recorded int8 weight codes (zero point 0), scales, int32 bias and the (scale, zero point)
   of its input and output tensors; each residual addition gets its output parameters.

The result runs in mode ``"onnx"`` (what ONNX Runtime executes once its graph optimizer has
fused the QDQ pattern into QLinearConv / QGemm / QLinearAdd; tests check it bit for bit).
A ReLU that the quantizer dropped is carried by the output zero point (uint8 codes with zero
point 0 saturate at 0).  Tensors passed through MaxPool / Flatten / Reshape must keep their
parameters (as ORT's quantizer writes them).

A DequantizeLinear of constant codes takes ``axis`` and ``block_size`` and the codes of
every ONNX quantized type (int8 / uint8, int16 / uint16, int4 / uint4, int2 / uint2, float8
E4M3FN / E4M3FNUZ / E5M2 / E5M2FNUZ, float4 E2M1).  A graph whose weights are quantized but
whose activations are not (no activation QuantizeLinear) imports as a float model on the
exactly dequantized weights.  The integer-only form cannot hold blocked or non-int8 weights
nor blocked activations: those are refused by name (node, attribute, value).
"""

import os

import numpy as np

from .._errors import FormatError, RefcompError
from ..io._format import _CORRUPT, _one_line
from ..model import Model
from ..quantize import qdq
from .onnx_ops import dequantize_linear
from .onnx_qlinear import QLINEAR_OPS, const_values, qlinear_to_qdq, scalar_param
from .weight import IntegerLinear

__all__ = ["load_qdq", "load_quantized"]

#: element types of weight codes imported through refcomp.quantize.qdq (ONNX names as
#: ml_dtypes spells them)
QDQ_TYPES = ("int8", "uint8", "int16", "uint16", "int4", "uint4", "int2", "uint2",
             "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
             "float4_e2m1fn")


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            from onnx.helper import get_attribute_value
            return get_attribute_value(a)
    return default


def _where(n):
    return f"node {n.name or (n.output[0] if len(n.output) else '')!r} ({n.op_type})"


def load_qdq(path_or_model, *, name=None):
    """Import a quantized ONNX model (QDQ or QLinear form) as an integer refcomp model in
    mode "onnx".

    A graph holding QLinearConv / QLinearMatMul / QLinearAdd is first rewritten into its
    QDQ form with the same parameters (:func:`refcomp.integer.onnx_qlinear.qlinear_to_qdq`);
    :func:`load_quantized` is the same function under a name that says so.

    Parameters
    ----------
    path_or_model : str, path-like or onnx.ModelProto
        A file is read without its external data (refused) and never modified; a
        ModelProto is copied.
    name : str, optional model name

    Returns
    -------
    refcomp.Model with :class:`IntegerLinear` weights and ``metadata["integer"]``
    (:mod:`refcomp.integer.run`); or, for a graph that quantizes its weights only (no
    activation QuantizeLinear), a float Model whose weights are the DequantizeLinear
    outputs and ``metadata["qdq_weights"]`` (per weight: node, code type, axis,
    block_size).

    Weight dequantization: int8 / uint8 / int16 / uint16 / int32 codes without
    ``block_size``: ``fl32(x) - zp`` (exact) times the scale in float32, one rounding
    (:func:`refcomp.integer.onnx_ops.dequantize_linear`).  Blocked, 4- / 2-bit, float8 and
    float4 codes: :func:`refcomp.quantize.qdq.dequantize_linear`, codes decoded exactly,
    ``(x - zp) * scale`` rounded once (half even) from the exact product to the scale's
    float type.  Both equal ONNX Runtime's float32 DequantizeLinear bit for bit.

    Raises
    ------
    FormatError
        Not a QDQ graph of the supported shape: weights with a non-zero zero point, an
        activation without QuantizeLinear / DequantizeLinear parameters, inconsistent
        parameters along pass-through layers, a node without its inputs, a parameter that
        is not a constant of the right size, a tensor whose declared shape or type its
        bytes do not back, an integer-only graph with blocked (``block_size``) or non-int8
        weights or a blocked activation QuantizeLinear / DequantizeLinear (named with the
        attribute's value), a negative ``block_size``, or anything :func:`refcomp.io.onnx.load` refuses.  The message
        is one line naming the file (``"ONNX model"`` for a ModelProto) and the node.
    """
    try:
        import onnx
    except ImportError:
        raise FormatError("reading ONNX files needs the 'onnx' package") from None
    if isinstance(path_or_model, onnx.ModelProto):
        label = "ONNX model"
        proto = onnx.ModelProto()
        proto.CopyFrom(path_or_model)
    else:
        label = os.fspath(path_or_model)
        if not os.path.isfile(label):
            raise FormatError(f"{label}: no such file")
        try:
            # external data would be read from any path the file names: refused instead
            proto = onnx.load(label, load_external_data=False)
        except Exception as exc:  # noqa: BLE001 (protobuf raises its own DecodeError classes)
            raise FormatError(f"{label}: not a readable ONNX file ({type(exc).__name__}: "
                              f"{_one_line(exc)[:160]})") from None
    try:
        return _load(proto, label, name)
    except RefcompError as exc:
        msg = _one_line(exc)
        raise FormatError(msg if msg.startswith(label) else f"{label}: {msg}") from None
    except (_CORRUPT + (RecursionError,)) as exc:
        # a defect of the graph that none of the checks names
        raise FormatError(f"{label}: malformed QDQ graph ({type(exc).__name__}: "
                          f"{_one_line(exc)[:160]})") from None


def _load(proto, label, name):
    from onnx import helper, numpy_helper
    consts = const_values(proto.graph, label)      # every tensor checked before it is read
    if any(n.op_type in QLINEAR_OPS for n in proto.graph.node):
        proto = qlinear_to_qdq(proto)      # the QLinear form, rewritten as its QDQ form
        consts = const_values(proto.graph, label)
    g = proto.graph
    if len(g.output) != 1:
        raise FormatError(f"graphs with {len(g.output)} outputs are not supported (exactly one)")
    producer = {o: n for n in g.node for o in n.output}
    dq_const = {}            # output name -> (codes, scale, zero point, axis)
    dq_info = {}             # output name -> {node, x_type, axis, block_size}
    act = {}                 # float tensor name -> (scale, zero point)
    rename = {}              # DQ output -> the float tensor it stands for
    keep = []
    new_inits = []
    for n in g.node:
        if n.op_type in ("DequantizeLinear", "QuantizeLinear") and \
                (len(n.input) < 2 or len(n.output) < 1):
            raise FormatError(f"{_where(n)}: needs an input, a scale and an output")
        if n.op_type == "DequantizeLinear" and n.input[0] in consts:
            codes = consts[n.input[0]]
            if n.input[1] not in consts:
                raise FormatError(f"{_where(n)}: the scale {n.input[1]!r} of constant codes is "
                                  "not a constant")
            scale = consts[n.input[1]]
            zname = n.input[2] if len(n.input) > 2 else ""
            if zname and zname not in consts:
                raise FormatError(f"{_where(n)}: the zero point {zname!r} is not a constant")
            zp = consts[zname] if zname else None
            axis = _attr(n, "axis", 1)
            block = _attr(n, "block_size", 0)
            value, xtype = _dequantize_const(n, codes, scale, zp, axis, block)
            dq_const[n.output[0]] = (codes, scale, zp, axis)
            dq_info[n.output[0]] = {"node": n.name or n.output[0], "x_type": xtype,
                                    "axis": int(axis), "block_size": int(block)}
            new_inits.append(numpy_helper.from_array(value, n.output[0]))
            continue
        if n.op_type == "DequantizeLinear":
            q = producer.get(n.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                raise FormatError(f"{_where(n)}: DequantizeLinear of a tensor that no "
                                  "QuantizeLinear produces")
            if len(q.input) < 3 or not q.input[2]:
                raise FormatError(f"{_where(q)}: an activation's QuantizeLinear needs a "
                                  "constant zero point (its type is the codes' type)")
            for node in (q, n):
                block = _attr(node, "block_size", 0)
                if block:
                    raise FormatError(f"{_where(node)}: attribute block_size={block}: blocked "
                                      "quantization of an activation has no integer-only form "
                                      "(per-tensor scale and zero point only)")
            s = scalar_param(consts, q.input[1], _where(q), "scale")
            z = scalar_param(consts, q.input[2], _where(q), "zero point")
            if np.asarray(z).dtype.kind not in "iu":
                raise FormatError(f"{_where(q)}: the zero point {q.input[2]!r} must be an "
                                  f"integer, got {np.asarray(z).dtype}")
            first = next(iter(act.values()), None)
            if first is not None and np.asarray(z).dtype != first[2]:
                raise FormatError(f"{_where(q)}: the zero point {q.input[2]!r} is "
                                  f"{np.asarray(z).dtype}, the other activations' {first[2]} "
                                  "(activations must all be int8 or all uint8)")
            act[q.input[0]] = (float(s), int(z), np.asarray(z).dtype)
            rename[n.output[0]] = q.input[0]
            continue
        if n.op_type == "QuantizeLinear":
            continue
        keep.append(n)
    for n in keep:
        for i, x in enumerate(n.input):
            if x in rename:
                n.input[i] = rename[x]
    outs = [rename.get(o.name, o.name) for o in g.output]
    used = {x for n in keep for x in n.input}
    g2 = helper.make_graph(keep, g.name or "qdq", list(g.input),
                           [helper.make_tensor_value_info(outs[0], 1, None)],   # FLOAT
                           [i for i in g.initializer if i.name in used
                            and i.name not in dq_const] + [i for i in new_inits if i.name in used])
    m2 = helper.make_model(g2, opset_imports=list(proto.opset_import))
    m2.ir_version = proto.ir_version
    from ..io.onnx import load_proto
    fmodel = load_proto(m2, source=label, name=name)
    if not act and dq_info:
        # weight-only quantization: no activation codes, the graph computes in float on the
        # dequantized weights, which are exactly the DequantizeLinear outputs
        meta = dict(fmodel.metadata)
        meta["qdq_weights"] = {k: dq_info[k] for k in sorted(dq_info) if k in used}
        return Model(fmodel.layers, name=fmodel.name, input_shape=fmodel.input_shape,
                     metadata=meta)
    return _attach(fmodel, keep, dq_const, dq_info, act, consts, outs[0], g)


def _dequantize_const(n, codes, scale, zp, axis, block):
    """(float value, element type name) of a DequantizeLinear of constant codes.

    NumPy integer codes without ``block_size`` keep the float32 formula of
    :func:`refcomp.integer.onnx_ops.dequantize_linear` (ONNX Runtime's kernel); blocked
    scales and the types NumPy lacks (int4 / uint4 / int2 / uint2, float8, float4, read by
    ``onnx`` as ml_dtypes arrays) go through :func:`refcomp.quantize.qdq.dequantize_linear`:
    codes decoded exactly, ``(x - zp) * scale`` rounded once (half even) to the scale's type,
    which is the float32 product ONNX Runtime computes (one rounding of an exact product).
    """
    if isinstance(block, bool) or not isinstance(block, int) or block < 0:
        raise FormatError(f"{_where(n)}: attribute block_size={block!r} must be an int >= 0")
    xtype = np.asarray(codes).dtype.name
    plain = not block and np.asarray(codes).dtype.kind in "iu"
    if not plain and xtype not in QDQ_TYPES:
        raise FormatError(f"{_where(n)}: codes of type {xtype!r} (supported: "
                          f"{', '.join(QDQ_TYPES)})")
    if not plain and (not isinstance(scale, np.ndarray)
                      or scale.dtype not in (np.float16, np.float32)):
        raise FormatError(f"{_where(n)}: the scale must be float16 or float32, got "
                          f"{np.asarray(scale).dtype}")
    try:
        if plain:
            return dequantize_linear(codes, scale, zp, axis=axis), xtype
        return qdq.dequantize_linear(codes, scale, zp, axis=axis, block_size=block,
                                     x_type=xtype), xtype
    except RefcompError as exc:
        msg = _one_line(exc)
        if block and "block_size" not in msg:
            msg = f"attribute block_size={block}: {msg}"
        raise FormatError(f"{_where(n)}: {msg}") from None


def _attach(fmodel, nodes, dq_const, dq_info, act, consts, out_name, g):
    weighted = [n for n in nodes if n.op_type in ("Conv", "Gemm", "MatMul")]
    adds = [n for n in nodes if n.op_type == "Add" and len(n.input) >= 2
            and all(x in act for x in n.input[:2])]
    layers = [(p, l) for p, l in fmodel.named_layers() if l.kind in ("dense", "conv2d")]
    residuals = [p for p, l in fmodel.named_layers() if l.kind == "residual"]
    if len(layers) != len(weighted):
        raise FormatError(f"QDQ import: {len(weighted)} Conv/Gemm/MatMul nodes ("
                          f"{', '.join(repr(n.name) for n in weighted)}) but {len(layers)} "
                          "dense/conv2d layers")
    dts = {v[2] for v in act.values()}
    if len(dts) != 1 or np.dtype(next(iter(dts))).name not in ("int8", "uint8"):
        raise FormatError(f"QDQ import: activations must all be int8 or all uint8, got "
                          f"{sorted(np.dtype(d).name for d in dts)}")
    dt = np.dtype(next(iter(dts))).name
    mapping = {}
    for (path, layer), node in zip(layers, weighted):
        where = _where(node)
        wname = node.input[1] if len(node.input) > 1 else ""
        if wname not in dq_const:
            raise FormatError(f"{where}: weights are not a DequantizeLinear constant")
        codes, ws, wz, axis = dq_const[wname]
        info = dq_info[wname]
        if info["block_size"]:
            raise FormatError(f"{where}: its weights' DequantizeLinear {info['node']!r} has "
                              f"attribute block_size={info['block_size']}: blocked weight "
                              "scales have no integer-only (QLinearConv / QGemm) form; "
                              "without activation QuantizeLinear the graph imports as float")
        if codes.dtype != np.int8:
            raise FormatError(f"{where}: weights must be int8 for integer-only inference, "
                              f"its DequantizeLinear {info['node']!r} has {info['x_type']} "
                              "codes; without activation QuantizeLinear the graph imports "
                              "as float")
        if wz is not None and np.any(wz != 0):
            raise FormatError(f"{where}: weights with a non-zero zero point")
        if codes.ndim < 2:
            raise FormatError(f"{where}: weights of shape {codes.shape} (at least 2-D)")
        if node.op_type == "Gemm" and not _attr(node, "transB", 0):
            codes = np.ascontiguousarray(codes.T)
        elif node.op_type == "MatMul":
            codes = np.ascontiguousarray(codes.T)
        if node.input[0] not in act or node.output[0] not in act:
            raise FormatError(f"{where}: input or output without QDQ parameters")
        sx, zx, _ = act[node.input[0]]
        so, zo, _ = act[node.output[0]]
        bias = None
        if len(node.input) > 2 and node.input[2]:
            if node.input[2] not in dq_const:
                raise FormatError(f"{where}: the bias is not an int32 DequantizeLinear "
                                  "constant")
            bias = dq_const[node.input[2]][0]
            if bias.dtype != np.int32:
                raise FormatError(f"{where}: the bias must be int32 codes, got {bias.dtype}")
        ws = np.asarray(ws, np.float32).reshape(-1)
        try:
            w = IntegerLinear(codes, ws, in_scale=sx, in_zero_point=zx, out_scale=so,
                              out_zero_point=zo, mode="onnx", bias=bias, act_dtype=dt)
        except RefcompError as exc:
            raise FormatError(f"{where}: {_one_line(exc)}") from None
        mapping[(path, "W")] = w
        mapping[(path, "b")] = None
    try:
        model = fmodel.replace_weights(mapping)
    except RefcompError as exc:
        raise FormatError(f"QDQ import: the integer weights do not fit the layers: "
                          f"{_one_line(exc)}") from None
    if len(residuals) != len(adds):
        raise FormatError(f"QDQ import: {len(adds)} quantized Add nodes for {len(residuals)} "
                          "residual blocks")
    add_params = {}
    for path, node in zip(residuals, adds):
        if node.output[0] not in act:
            raise FormatError(f"{_where(node)}: the sum has no QDQ parameters")
        s, z, _ = act[node.output[0]]
        info = np.iinfo(dt)
        add_params[path] = {"scale": s, "zero_point": z, "act_min": int(info.min),
                            "act_max": int(info.max)}
    first_q = next((n for n in g.node if n.op_type == "QuantizeLinear"
                    and n.input[0] not in consts and n.input[0] in act), None)
    if first_q is None:
        raise FormatError("QDQ import: no QuantizeLinear of the graph input")
    sin, zin, _ = act[first_q.input[0]]
    sout, zout, _ = act[out_name] if out_name in act else (None, None, None)
    if sout is None:
        raise FormatError("QDQ import: the graph output is not a DequantizeLinear of codes")
    meta = dict(fmodel.metadata)
    meta["integer"] = {"mode": "onnx", "act_dtype": dt,
                       "input": {"scale": sin, "zero_point": zin},
                       "output": {"scale": sout, "zero_point": zout}, "add": add_params,
                       "source": "onnx QDQ"}
    return Model(model.layers, name=fmodel.name, input_shape=fmodel.input_shape, metadata=meta)


#: The same import, named for both forms.
load_quantized = load_qdq
