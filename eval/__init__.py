"""Plan parsing, DAG metrics and the evaluation harness. Knows nothing of training."""
from .dag import build_graph, plan_shape, strict_match, structure_match
from .plan import Plan, PlanError, Step, format_plan, parse_plan

__all__ = ["Plan", "PlanError", "Step", "build_graph", "format_plan", "parse_plan", "plan_shape",
           "strict_match", "structure_match"]
