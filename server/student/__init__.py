"""The student: mentee's vLLM server, the client that asks it (with token log-probs and runtime LoRA), the prepared
model folders and the prompt the student is asked with."""
