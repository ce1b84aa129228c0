import gradio as gr
from tabulate import tabulate


def greet(name: str) -> str:
    return f"Hello, {name}! " + tabulate([[len(name)]], tablefmt="plain")


demo = gr.Interface(greet, "text", "text", api_name="greet")
demo.launch()
