"""tinyagent-ft: fine-tune small language models to write LLMCompiler function-calling plans."""
__version__ = "0.1.0"
