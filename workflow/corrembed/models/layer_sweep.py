"""Layer sweeps: a model's embeddings at several layers from ONE forward pass.

A sweep is a model's ``layers:`` list (config). Each entry is a value ``layer:`` accepts for the
model's source, or an integer N, the model's N-th block (negative counts from the end):

- torchvision: ``penultimate``, ``output``, any graph node name (a module name selects its last
  node, as ``layer:`` does); N is the N-th block of the trunk (:func:`trunk_blocks`), named by its
  module (``layer3``, ``features.4``, ``encoder.layers.encoder_layer_7``).
- timm: ``penultimate``, ``output``, ``block:N``; N is ``block:N`` (a ``forward_intermediates``
  index).
- open_clip and huggingface: no sweeps yet (ConfigError); their ``layer:`` values still work one
  run at a time.

Each layer's embedding is computed by the same operations, in the same order, as a plain run
with ``layer: <that layer>`` (torchvision: one ``create_feature_extractor`` graph returning every
node; timm: one ``forward_intermediates`` call whose final features feed ``forward_head``), so it
is equal bit for bit and is cached under that run's embedding identity: a sweep layer that is
also a model's headline layer is embedded once.

*Relative depth* places each layer in [0, 1] along the forward pass, for the sweep plot:
torchvision, the position of the layer's (last) node among the eval graph's nodes; timm, block
``i`` of ``K`` at ``(i + 1) / (K + 2)``, ``penultimate`` at ``(K + 1) / (K + 2)`` and ``output``
at 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torchvision.models import SwinTransformer
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from ..errors import ConfigError
from .features import final_classifier, graph_node_error, pool_features
from .spec import ModelSpec

SPECIAL_LAYERS = ("penultimate", "output")
#: Sources with layer sweeps.
SWEEP_SOURCES = ("torchvision", "timm")
#: A level with at most this many weight-holding children is a wrapper (``features``,
#: ``encoder``, stem + body), not a sequence of blocks: the trunk search descends through it.
WRAPPER_CHILDREN = 2


@dataclass(frozen=True)
class SweepPlan:
    """A resolved ``layers:`` list.

    Attributes
    ----------
    entries : tuple
        The configured entries, in config order.
    layers : tuple of str
        Each entry's layer as ``layer:`` would name it (same order; ints resolved).
    depth : tuple of float
        Each layer's relative depth in [0, 1] (see the module docstring).
    """

    entries: tuple
    layers: tuple[str, ...]
    depth: tuple[float, ...]


# --------------------------------------------------------------------------- torchvision


def _weight_count(module: nn.Module) -> int:
    """Number of values in the module's weight matrices and kernels (parameters with >= 2 dims)."""
    return sum(p.numel() for p in module.parameters() if p.ndim >= 2)


def _in_graph(name: str, nodes: list[str]) -> bool:
    """Whether ``name`` is a node or a module prefix of one."""
    return any(n == name or n.startswith(name + ".") for n in nodes)


def trunk_blocks(model: nn.Module, eval_nodes: list[str] | None = None) -> list[str]:
    """The module names of a torchvision network's blocks, in forward order.

    From the root, the children holding weights (parameters with >= 2 dims) that are in the eval
    graph, leaving out the final classifier's branch, are the candidates; while there are at
    most :data:`WRAPPER_CHILDREN` of them (a ``features`` or ``encoder`` wrapper, a stem beside
    a body), the children of the one holding the most weights are the next candidates. ResNet:
    ``conv1, layer1 ... layer4``; MobileNet, EfficientNet, ConvNeXt, Swin: ``features.0 ...``;
    ViT: ``encoder.layers.encoder_layer_0 ...``; RegNet: ``trunk_output.block1 ...``.

    Parameters
    ----------
    model : nn.Module
        The network (any device, meta included).
    eval_nodes : list of str, optional
        ``get_graph_node_names(model)[1]`` when already computed.
    """
    if eval_nodes is None:
        eval_nodes = get_graph_node_names(model.eval())[1]
    try:
        head = final_classifier(model)[0]
    except ConfigError:
        head = None
    prefix, module = "", model
    while True:
        candidates = [
            (prefix + name, child)
            for name, child in module.named_children()
            if _weight_count(child)
            and _in_graph(prefix + name, eval_nodes)
            and not (head is not None and (head == prefix + name or head.startswith(prefix + name + ".")))
        ]
        if not candidates or len(candidates) > WRAPPER_CHILDREN:
            return [name for name, _ in candidates]
        name, child = max(candidates, key=lambda nc: _weight_count(nc[1]))
        if not any(True for _ in child.children()):
            return [name for name, _ in candidates]
        prefix, module = name + ".", child


def _last_node(layer: str, nodes: list[str]) -> int:
    """Index of the node a layer name selects (its last node for a module name), or -1."""
    matching = [i for i, n in enumerate(nodes) if n == layer or n.startswith(layer + ".")]
    return matching[-1] if matching else -1


def _torchvision_plan(spec: ModelSpec, entries: list, model: nn.Module) -> SweepPlan:
    """Resolve a torchvision sweep on ``model`` (a shape-only network is enough)."""
    nodes = get_graph_node_names(model.eval())[1]
    blocks: list[str] | None = None
    layers, depth = [], []
    last = max(len(nodes) - 1, 1)
    for entry in entries:
        if isinstance(entry, int):
            blocks = trunk_blocks(model, nodes) if blocks is None else blocks
            if not -len(blocks) <= entry < len(blocks):
                raise ConfigError(
                    f"model {spec.name!r}: layers entry {entry}: {spec.arch} has {len(blocks)} blocks "
                    f"({', '.join(blocks)}); use 0 ... {len(blocks) - 1}, or negative from the end"
                )
            entry = blocks[entry]
        if entry == "output":
            position = 1.0
        elif entry == "penultimate":
            classifier = _last_node(final_classifier(model)[0], nodes)
            position = max(classifier - 1, 0) / last if classifier >= 0 else 1.0
        else:
            index = _last_node(entry, nodes)
            if index < 0:
                raise graph_node_error(spec.name, entry, model, nodes)
            position = index / last
        layers.append(entry)
        depth.append(position)
    return SweepPlan(tuple(entries), tuple(layers), tuple(depth))


def _copy_returned_values(graph_module: nn.Module) -> None:
    """Return a copy of each returned node's value, taken as soon as it is computed.

    A graph returning one node stops there; one returning several runs on past the earlier
    ones, and a later in-place operation (``out += identity``, ``ReLU(inplace=True)``) would
    change their values. The copy keeps each value as a graph ending at that node returns it.
    """
    graph = graph_module.eval_graph
    output = next(node for node in graph.nodes if node.op == "output")
    returned = dict(output.args[0])
    last = max(returned.values(), key=lambda node: list(graph.nodes).index(node))
    for key, node in returned.items():
        if node is not last:
            with graph.inserting_after(node):
                returned[key] = graph.call_function(torch.clone, (node,))
    output.args = (returned,)
    graph.lint()
    graph_module.eval()
    graph_module.recompile()


class TorchvisionLayerSweep(nn.Module):
    """A torchvision network's embeddings at several layers in one pass:
    ``forward(x (b, 3, H, W)) -> {layer: (b, dim) float32}``.

    Only ``penultimate`` / ``output``: the network itself runs, with the classifier's forward
    pre-hook (as :class:`~corrembed.models.features.FeatureExtractor`). With graph nodes: one
    ``create_feature_extractor`` graph returns every node (and the graph's last node, the
    output, when ``penultimate`` or ``output`` is asked for; the pre-hook sits on the same
    classifier module, which the graph calls), each value copied as soon as it is computed so
    that later in-place operations do not change it (:func:`_copy_returned_values`).
    """

    def __init__(self, model: nn.Module, layers: tuple[str, ...], *, model_name: str = "model"):
        """See the class docstring; ``layers`` as :attr:`SweepPlan.layers`."""
        super().__init__()
        self.layers = tuple(layers)
        self._captured: list[torch.Tensor] = []
        self._hook = None
        if "penultimate" in self.layers:
            self.classifier_name, classifier = final_classifier(model)
            self._hook = classifier.register_forward_pre_hook(self._capture)
        self.nodes = [layer for layer in self.layers if layer not in SPECIAL_LAYERS]
        self.channels_last: dict[str, bool] = {}
        if not self.nodes:
            self.model, self.graph = model, False
            return
        was_training = model.training
        model.eval()
        train_nodes, eval_nodes = get_graph_node_names(model)
        keys = {}
        for layer in self.nodes:
            index = _last_node(layer, eval_nodes)
            if index < 0:
                raise graph_node_error(model_name, layer, model, eval_nodes)
            # Swin keeps (b, H, W, C) maps until its "permute" node (as FeatureExtractor).
            self.channels_last[layer] = (
                isinstance(model, SwinTransformer) and "permute" in eval_nodes and index < eval_nodes.index("permute")
            )
            keys[layer] = f"layer{len(keys)}"
        self.keys = keys
        if any(layer in SPECIAL_LAYERS for layer in self.layers):
            # The classifier must run (its pre-hook) and the output is the graph's last node.
            self.output_key = keys.get(eval_nodes[-1], "output")
            eval_return = {**{layer: key for layer, key in keys.items()}, eval_nodes[-1]: self.output_key}
        else:
            self.output_key = None
            eval_return = dict(keys)
        # Only the eval graph is used (forward refuses training mode); the train graph returns
        # its last node so that it builds for any network.
        self.model = create_feature_extractor(
            model, train_return_nodes={train_nodes[-1]: "train"}, eval_return_nodes=eval_return
        )
        _copy_returned_values(self.model)
        self.model.train(was_training)
        self.graph = True

    def _capture(self, module: nn.Module, args: tuple) -> None:
        """Forward pre-hook of the classifier: keep its input."""
        self._captured.append(args[0])

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(b, 3, H, W) float -> {layer: (b, dim) float32}, in the order of ``layers``."""
        if self.model.training:
            raise RuntimeError("TorchvisionLayerSweep must be used in eval mode")
        self._captured.clear()
        values = self.model(x)
        out: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            if layer == "penultimate":
                if not self._captured:
                    raise RuntimeError(f"the classifier {self.classifier_name} was not called")
                out[layer] = pool_features(self._captured[-1])
            elif layer == "output":
                out[layer] = pool_features(values[self.output_key] if self.graph else values)
            else:
                out[layer] = pool_features(values[self.keys[layer]], channels_last=self.channels_last[layer])
        self._captured.clear()
        return out


# --------------------------------------------------------------------------- timm


def _timm_block_count(model: nn.Module) -> int:
    """Number of ``forward_intermediates`` outputs (what the timm source's check counts)."""
    return len(getattr(model, "feature_info", []) or []) or len(getattr(model, "blocks", []) or [])


def _timm_plan(spec: ModelSpec, entries: list, model: nn.Module) -> SweepPlan:
    """Resolve a timm sweep on ``model`` (a meta-device network is enough)."""
    from .timm_source import BLOCK_LAYER

    count = _timm_block_count(model)
    layers, depth = [], []
    for entry in entries:
        layer = f"block:{entry}" if isinstance(entry, int) else entry
        match = BLOCK_LAYER.match(layer)
        if match:
            index = int(match.group(1))
            if not -count <= index < count:
                raise ConfigError(
                    f"model {spec.name!r}: layers entry {entry!r}: timm {spec.arch} has {count} intermediate "
                    f"outputs (0 ... {count - 1}, or negative from the end)"
                )
            position = (index % count + 1) / (count + 2)
        elif layer == "penultimate":
            position = (count + 1) / (count + 2)
        elif layer == "output":
            position = 1.0
        else:
            raise ConfigError(
                f"model {spec.name!r}: layers entry {entry!r} is not a timm layer; use penultimate, output, "
                "block:N or an integer N"
            )
        layers.append(layer)
        depth.append(position)
    return SweepPlan(tuple(entries), tuple(layers), tuple(depth))


class TimmLayerSweep(nn.Module):
    """A timm network's embeddings at several layers in one pass:
    ``forward(x) -> {layer: (b, dim) float32}``.

    One ``forward_intermediates(x, indices=...)`` call gives the blocks and the final features;
    ``penultimate`` is ``forward_head(final, pre_logits=True)``, ``output`` ``forward_head(final)``
    (``forward_intermediates``' final features are ``forward_features(x)``). Without
    ``penultimate``/``output`` the call stops after the last block asked for.
    """

    def __init__(self, model: nn.Module, layers: tuple[str, ...]):
        """See the class docstring; ``layers`` as :attr:`SweepPlan.layers`."""
        from .timm_source import BLOCK_LAYER

        super().__init__()
        self.model = model
        self.layers = tuple(layers)
        count = _timm_block_count(model)
        self.blocks = {
            layer: int(BLOCK_LAYER.match(layer).group(1)) % count for layer in self.layers if BLOCK_LAYER.match(layer)
        }
        self.indices = sorted(set(self.blocks.values()))
        self.head = any(layer in SPECIAL_LAYERS for layer in self.layers)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """(b, 3, H, W) float -> {layer: (b, dim) float32}, in the order of ``layers``."""
        m = self.model
        intermediates: list[torch.Tensor] = []
        final = None
        if self.indices and self.head:
            final, intermediates = m.forward_intermediates(x, indices=self.indices, intermediates_only=False)
        elif self.indices:
            intermediates = m.forward_intermediates(x, indices=self.indices, intermediates_only=True)
        else:
            final = m.forward_features(x)
        by_index = dict(zip(self.indices, intermediates))
        out: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            if layer == "penultimate":
                out[layer] = pool_features(m.forward_head(final, pre_logits=True))
            elif layer == "output":
                out[layer] = pool_features(m.forward_head(final))
            else:
                out[layer] = pool_features(by_index[self.blocks[layer]])
        return out


# --------------------------------------------------------------------------- front


def _check_entries(spec: ModelSpec, layers) -> list:
    """The ``layers:`` list checked for shape: non-empty, strings or ints, no repeats."""
    if not isinstance(layers, list | tuple) or not layers:
        raise ConfigError(f"model {spec.name!r}: 'layers' must be a non-empty list of layer names or block numbers")
    for entry in layers:
        if isinstance(entry, bool) or not isinstance(entry, int | str) or entry == "":
            raise ConfigError(
                f"model {spec.name!r}: layers entry {entry!r} must be a layer name (string) or a block number (int)"
            )
    return list(layers)


def sweep_plan(spec: ModelSpec, layers, model: nn.Module | None = None) -> SweepPlan:
    """Resolve a model's ``layers:`` list.

    Parameters
    ----------
    spec : ModelSpec
        The parsed model spec (its ``layer`` is not part of the sweep).
    layers : list of str or int
        The configured entries.
    model : nn.Module, optional
        The network; by default a shape-only one is built (no weights, no download).

    Returns
    -------
    SweepPlan

    Raises
    ------
    ConfigError
        For a source without sweeps, an entry that is not a layer of the model (close matches
        listed), a block number out of range, or two entries naming the same layer.
    """
    entries = _check_entries(spec, layers)
    if spec.source not in SWEEP_SOURCES:
        raise ConfigError(
            f"model {spec.name!r}: layer sweeps ('layers:') are available for the {' and '.join(SWEEP_SOURCES)} "
            f"sources, not {spec.source!r} yet; compare its layers with one model entry per 'layer:'"
        )
    if spec.source == "torchvision":
        from .torchvision_source import shape_only_model

        plan = _torchvision_plan(spec, entries, model if model is not None else shape_only_model(spec.arch))
    else:
        from .timm_source import meta_model

        plan = _timm_plan(spec, entries, model if model is not None else meta_model(spec))
    seen: dict[str, object] = {}
    for entry, layer in zip(plan.entries, plan.layers):
        if layer in seen:
            raise ConfigError(
                f"model {spec.name!r}: layers entries {seen[layer]!r} and {entry!r} are the same layer "
                f"({layer}); list each layer once"
            )
        seen[layer] = entry
    return plan


def build_layer_sweep(spec: ModelSpec, model: nn.Module, plan: SweepPlan) -> nn.Module:
    """The one-pass extractor of ``plan`` on ``model`` (:class:`TorchvisionLayerSweep` or
    :class:`TimmLayerSweep`)."""
    if spec.source == "torchvision":
        return TorchvisionLayerSweep(model, plan.layers, model_name=spec.name)
    return TimmLayerSweep(model, plan.layers)
