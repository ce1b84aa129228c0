import gradio as gr


def greet(name: str, enthusiasm: float = 1) -> str:
    """Say hello, with as many exclamation marks as the slider asks for."""
    return f"Hello, {name or 'World'}" + "!" * int(enthusiasm)


demo = gr.Interface(
    fn=greet,
    inputs=[
        gr.Textbox(label="Name", placeholder="Your name"),
        gr.Slider(1, 10, value=1, step=1, label="Enthusiasm"),
    ],
    outputs=gr.Textbox(label="Greeting"),
    examples=[["World", 1], ["Spaces", 3]],
    title="{{ title }}",
    description="Type a name and press Submit.",
    api_name="greet",
    flagging_mode="never",
)

if __name__ == "__main__":
    demo.launch()
