from fastapi import FastAPI
from fastapi.responses import HTMLResponse

app = FastAPI(title="{{ title }}")

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>{{ title }}</title>
<style>body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; padding: 0 1rem; }</style>
</head>
<body>
  <h1>{{ title }}</h1>
  <p>A Docker app listening on port 7860.</p>
  <p><input id="name" value="World"> <button onclick="hello()">Say hello</button></p>
  <p id="answer"></p>
  <script>
    async function hello() {
      const name = encodeURIComponent(document.getElementById("name").value);
      const reply = await fetch("api/hello?name=" + name);  // relative: works behind a path prefix
      document.getElementById("answer").textContent = (await reply.json()).message;
    }
  </script>
</body>
</html>
"""


@app.get("/", response_class=HTMLResponse)
def index() -> str:
    return PAGE


@app.get("/api/hello")
def hello(name: str = "World") -> dict[str, str]:
    return {"message": f"Hello, {name}!"}


@app.get("/health")
def health() -> str:
    return "ok"
