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
"""

import os
import tempfile

import numpy as np

from .._errors import FormatError
from ..model import Model
from .onnx_ops import dequantize_linear
from .onnx_qlinear import QLINEAR_OPS, qlinear_to_qdq
from .weight import IntegerLinear

__all__ = ["load_qdq", "load_quantized"]


def _const_values(g, numpy_helper):
    vals = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    vals[n.output[0]] = numpy_helper.to_array(a.t)
    return vals


def _attr(node, name, default):
    for a in node.attribute:
        if a.name == name:
            from onnx.helper import get_attribute_value
            return get_attribute_value(a)
    return default


def load_qdq(path_or_model, *, name=None):
    """Import a quantized ONNX model (QDQ or QLinear form) as an integer refcomp model in
    mode "onnx".

    A graph holding QLinearConv / QLinearMatMul / QLinearAdd is first rewritten into its
    QDQ form with the same parameters (:func:`refcomp.integer.onnx_qlinear.qlinear_to_qdq`);
    :func:`load_quantized` is the same function under a name that says so.

    Parameters
    ----------
    path_or_model : str, path-like or onnx.ModelProto
    name : str, optional model name

    Returns
    -------
    refcomp.Model with :class:`IntegerLinear` weights and ``metadata["integer"]``
    (:mod:`refcomp.integer.run`).

    Raises
    ------
    FormatError
        Not a QDQ graph of the supported shape: weights with a non-zero zero point, an
        activation without QuantizeLinear / DequantizeLinear parameters, inconsistent
        parameters along pass-through layers, or anything :func:`refcomp.io.onnx.load`
        refuses.
    """
    try:
        import onnx
        from onnx import helper, numpy_helper
    except ImportError:
        raise FormatError("reading ONNX files needs the 'onnx' package") from None
    if isinstance(path_or_model, onnx.ModelProto):
        proto = onnx.ModelProto()
        proto.CopyFrom(path_or_model)
    else:
        try:
            proto = onnx.load(os.fspath(path_or_model))
        except Exception as exc:
            raise FormatError(f"{path_or_model}: not a readable ONNX file ({exc})") from None
    if any(n.op_type in QLINEAR_OPS for n in proto.graph.node):
        proto = qlinear_to_qdq(proto)      # the QLinear form, rewritten as its QDQ form
    g = proto.graph
    consts = _const_values(g, numpy_helper)
    producer = {o: n for n in g.node for o in n.output}
    dq_const = {}            # output name -> (codes, scale, zero point, axis)
    act = {}                 # float tensor name -> (scale, zero point)
    rename = {}              # DQ output -> the float tensor it stands for
    keep = []
    new_inits = []
    for n in g.node:
        if n.op_type == "DequantizeLinear" and n.input[0] in consts:
            codes = consts[n.input[0]]
            scale = consts[n.input[1]]
            zp = consts[n.input[2]] if len(n.input) > 2 and n.input[2] else None
            axis = _attr(n, "axis", 1)
            dq_const[n.output[0]] = (codes, scale, zp, axis)
            new_inits.append(numpy_helper.from_array(
                dequantize_linear(codes, scale, zp, axis=axis), n.output[0]))
            continue
        if n.op_type == "DequantizeLinear":
            q = producer.get(n.input[0])
            if q is None or q.op_type != "QuantizeLinear":
                raise FormatError(f"node {n.name!r}: DequantizeLinear of a tensor that no "
                                  "QuantizeLinear produces")
            s = consts[q.input[1]]
            z = consts[q.input[2]]
            act[q.input[0]] = (float(np.asarray(s).reshape(-1)[0]),
                               int(np.asarray(z).reshape(-1)[0]), np.asarray(z).dtype)
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
                           [helper.make_tensor_value_info(outs[0], onnx.TensorProto.FLOAT,
                                                          None)],
                           [i for i in g.initializer if i.name in used
                            and i.name not in dq_const] + [i for i in new_inits if i.name in used])
    m2 = helper.make_model(g2, opset_imports=list(proto.opset_import))
    m2.ir_version = proto.ir_version
    from ..io.onnx import load as load_float
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "stripped.onnx")
        onnx.save(m2, p)
        fmodel = load_float(p, name=name)
    return _attach(fmodel, keep, dq_const, act, consts, outs[0], g)


def _attach(fmodel, nodes, dq_const, act, consts, out_name, g):
    weighted = [n for n in nodes if n.op_type in ("Conv", "Gemm", "MatMul")]
    adds = [n for n in nodes if n.op_type == "Add" and all(x in act for x in n.input[:2])]
    layers = [(p, l) for p, l in fmodel.named_layers() if l.kind in ("dense", "conv2d")]
    residuals = [p for p, l in fmodel.named_layers() if l.kind == "residual"]
    if len(layers) != len(weighted):
        raise FormatError(f"QDQ import: {len(weighted)} Conv/Gemm/MatMul nodes but "
                          f"{len(layers)} dense/conv2d layers")
    dts = {v[2] for v in act.values()}
    if len(dts) != 1 or np.dtype(next(iter(dts))).name not in ("int8", "uint8"):
        raise FormatError(f"QDQ import: activations must all be int8 or all uint8, got {dts}")
    dt = np.dtype(next(iter(dts))).name
    mapping = {}
    for (path, layer), node in zip(layers, weighted):
        wname = node.input[1]
        if wname not in dq_const:
            raise FormatError(f"node {node.name!r}: weights are not a DequantizeLinear constant")
        codes, ws, wz, axis = dq_const[wname]
        if wz is not None and np.any(wz != 0):
            raise FormatError(f"node {node.name!r}: weights with a non-zero zero point")
        if codes.dtype != np.int8:
            raise FormatError(f"node {node.name!r}: weights must be int8, got {codes.dtype}")
        if node.op_type == "Gemm" and not _attr(node, "transB", 0):
            codes = np.ascontiguousarray(codes.T)
        elif node.op_type == "MatMul":
            codes = np.ascontiguousarray(codes.T)
        if node.input[0] not in act or node.output[0] not in act:
            raise FormatError(f"node {node.name!r}: input or output without QDQ parameters")
        sx, zx, _ = act[node.input[0]]
        so, zo, _ = act[node.output[0]]
        bias = None
        if len(node.input) > 2 and node.input[2]:
            if node.input[2] not in dq_const:
                raise FormatError(f"node {node.name!r}: the bias is not an int32 "
                                  "DequantizeLinear constant")
            bias = dq_const[node.input[2]][0].astype(np.int32)
        ws = np.asarray(ws, np.float32).reshape(-1)
        w = IntegerLinear(codes, ws, in_scale=sx, in_zero_point=zx, out_scale=so,
                          out_zero_point=zo, mode="onnx", bias=bias, act_dtype=dt)
        mapping[(path, "W")] = w
        mapping[(path, "b")] = None
    model = fmodel.replace_weights(mapping)
    add_params = {}
    for path, node in zip(residuals, adds):
        s, z, _ = act[node.output[0]]
        info = np.iinfo(dt)
        add_params[path] = {"scale": s, "zero_point": z, "act_min": int(info.min),
                            "act_max": int(info.max)}
    if len(residuals) != len(adds):
        raise FormatError(f"QDQ import: {len(adds)} quantized Add nodes for {len(residuals)} "
                          "residual blocks")
    first_q = next(n for n in g.node if n.op_type == "QuantizeLinear"
                   and n.input[0] not in consts)
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
