"""mentee's Gradio UI; built in the UI issue."""
