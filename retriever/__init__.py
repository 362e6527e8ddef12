"""Retrieval for prompts: the ToolRAG tool classifier and the in-context example index."""
from .example_index import ExampleIndex, Hit
from .labels import Labelled, load_labelled
from .metrics import selection_metrics
from .tool_classifier import ClassifierConfig, ToolClassifier, train_classifier

__all__ = ["ClassifierConfig", "ExampleIndex", "Hit", "Labelled", "ToolClassifier", "load_labelled",
           "selection_metrics", "train_classifier"]
