"""Embeddings at a layer of a ``torch.nn.Module``: pooling and torchvision's feature extraction.

:class:`FeatureExtractor` serves torchvision models (and any classifier whose last
``nn.Linear`` is its head); the other sources wrap their own forward functions in
:class:`FunctionExtractor`. All return (batch, dim) float32 through :func:`pool_features`.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable

import torch
from torch import nn
from torchvision.models import SwinTransformer
from torchvision.models.feature_extraction import create_feature_extractor, get_graph_node_names

from ..errors import ConfigError


def final_classifier(model: nn.Module) -> tuple[str, nn.Module]:
    """The final classifier of a network.

    Returns
    -------
    (str, nn.Module)
        The model's last ``nn.Linear`` in module order and its name; without any Linear
        (SqueezeNet) the last ``nn.Conv2d`` in ``model.classifier``.

    Raises
    ------
    ConfigError
        When there is neither.
    """
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    if linears:
        return linears[-1]
    classifier = getattr(model, "classifier", None)
    if isinstance(classifier, nn.Module):
        convs = [(f"classifier.{n}", m) for n, m in classifier.named_modules() if isinstance(m, nn.Conv2d)]
        if convs:
            return convs[-1]
    raise ConfigError(
        f"{type(model).__name__} has no nn.Linear and no Conv2d in .classifier; use layer: output or a graph node name"
    )


def graph_node_error(model_name: str, layer: str, model: nn.Module, eval_nodes: list[str]) -> ConfigError:
    """The error for a layer name that is no node (nor module prefix) of the eval graph: close
    matches and the last nodes listed."""
    close = difflib.get_close_matches(layer, eval_nodes, n=5, cutoff=0.6)
    hint = f" Close matches: {', '.join(close)}." if close else ""
    return ConfigError(
        f"model {model_name!r}: layer {layer!r} is not a graph node of "
        f"{type(model).__name__}.{hint} The last nodes before the output are: "
        f"{', '.join(eval_nodes[-15:])}. Use 'penultimate', 'output', or any name from "
        "torchvision.models.feature_extraction.get_graph_node_names(model)[1]."
    )


def pool_features(features: torch.Tensor, *, channels_last: bool = False) -> torch.Tensor:
    """Pool a layer's output to one vector per image.

    Parameters
    ----------
    features : Tensor
        (b, ...) layer output. 4-d spatial maps are global-average-pooled over H, W ((b, C, H, W),
        or (b, H, W, C) when ``channels_last``); 2-d is kept; other shapes are flattened.
    channels_last : bool
        Whether a 4-d map is laid out (b, H, W, C).

    Returns
    -------
    Tensor
        (b, dim) float32.
    """
    if features.ndim == 4:
        features = features.mean(dim=(1, 2) if channels_last else (2, 3))
    elif features.ndim != 2:
        features = features.flatten(1)
    return features.float()


class FunctionExtractor(nn.Module):
    """Embeddings from a forward function of a model: ``forward(x (b, 3, H, W)) -> (b, dim) float32``.

    Parameters
    ----------
    model : nn.Module
        Held as a submodule (so ``.to()``, ``.eval()`` and ``channels_last`` reach it).
    function : callable
        ``function(model, x) -> Tensor`` computing the layer's output.
    layer : str
        The layer's name (for messages and ``repr``).
    """

    def __init__(self, model: nn.Module, function: Callable[[nn.Module, torch.Tensor], torch.Tensor], layer: str):
        """See the class docstring."""
        super().__init__()
        self.model = model
        self.function = function
        self.layer = layer

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, H, W) float -> (b, dim) float32 (see :func:`pool_features`)."""
        features = self.function(self.model, x)
        if not isinstance(features, torch.Tensor):
            raise ConfigError(f"layer {self.layer!r} gives a {type(features).__name__}, not a tensor")
        return pool_features(features)


class FeatureExtractor(nn.Module):
    """Embeddings of a torchvision model at one layer: ``forward(x (b, 3, H, W) float) -> (b, dim) float32``.

    Parameters
    ----------
    model : nn.Module
        The network (its training flag is left as it was).
    layer : str
        - ``"penultimate"``: the input of the final classifier (:func:`final_classifier`), caught
          by a forward pre-hook while the whole model runs;
        - ``"output"``: the logits ``model(x)``;
        - a node name from ``get_graph_node_names(model)`` (eval graph), through
          ``create_feature_extractor``; a module name such as ``"layer3"`` selects that module's
          last node (create_feature_extractor's prefix rule).
    model_name : str
        Named in errors.

    Notes
    -----
    4-d outputs are global-average-pooled (Swin's channels-last maps before its ``permute``
    node are pooled over their H, W axes), any other shape is flattened.

    Raises
    ------
    ConfigError
        For an unknown node name (close matches and the last nodes listed).
    """

    def __init__(self, model: nn.Module, layer: str = "penultimate", *, model_name: str = "model"):
        """See the class docstring."""
        super().__init__()
        self.layer = layer
        self.channels_last = False
        self._captured: list[torch.Tensor] = []
        if layer == "penultimate":
            self.classifier_name, classifier = final_classifier(model)
            self._hook = classifier.register_forward_pre_hook(self._capture)
            self.model = model
        elif layer == "output":
            self.model = model
        else:
            was_training = model.training
            model.eval()
            train_nodes, eval_nodes = get_graph_node_names(model)
            # A module name ("layer3") selects its last node, as in create_feature_extractor.
            matching = [i for i, n in enumerate(eval_nodes) if n == layer or n.startswith(layer + ".")]
            if not matching:
                raise graph_node_error(model_name, layer, model, eval_nodes)
            # Swin keeps (b, H, W, C) maps until its "permute" node.
            self.channels_last = (
                isinstance(model, SwinTransformer)
                and "permute" in eval_nodes
                and matching[-1] < eval_nodes.index("permute")
            )
            # Only the eval graph is used; the train graph (which can differ, e.g. GoogLeNet's
            # auxiliary heads) gets the same node where it has one.
            in_train = any(n == layer or n.startswith(layer + ".") for n in train_nodes)
            train_node = layer if in_train else train_nodes[-1]
            self.model = create_feature_extractor(
                model, train_return_nodes={train_node: "features"}, eval_return_nodes={layer: "features"}
            )
            self.model.train(was_training)

    def _capture(self, module: nn.Module, args: tuple) -> None:
        """Forward pre-hook of the classifier: keep its input."""
        self._captured.append(args[0])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(b, 3, H, W) float -> (b, dim) float32 at the layer (see the class docstring)."""
        if self.layer == "penultimate":
            self._captured.clear()
            self.model(x)
            if not self._captured:
                raise RuntimeError(f"the classifier {self.classifier_name} was not called")
            features = self._captured[-1]
            self._captured.clear()
        elif self.layer == "output":
            features = self.model(x)
        else:
            if self.model.training:
                raise RuntimeError("FeatureExtractor at a graph node must be used in eval mode")
            features = self.model(x)["features"]
        if not isinstance(features, torch.Tensor):
            raise ConfigError(f"layer {self.layer!r} gives a {type(features).__name__}, not a tensor")
        return pool_features(features, channels_last=self.channels_last)
