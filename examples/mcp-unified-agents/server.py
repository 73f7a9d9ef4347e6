"""MCP Unified Agents: a minimal MCP server over stdio (JSON-RPC, one message per line).

Standard library only, so it runs anywhere Python does. `python server.py --check`
loads every agent and workflow and exits non-zero if any is broken.
"""

import json
import sys
from pathlib import Path

from workflow import registry

HERE = Path(__file__).resolve().parent
PROTOCOL = "2025-06-18"


def load_agents():
    agents = json.loads((HERE / "agents.json").read_text())["agents"]
    for agent in agents:
        registry.get(agent["workflow"])  # raises KeyError for an unknown workflow
    return agents


def handle(request, agents):
    method, rid = request.get("method"), request.get("id")
    if method == "initialize":
        result = {"protocolVersion": PROTOCOL, "capabilities": {"tools": {}},
                  "serverInfo": {"name": "mcp-unified-agents", "version": "0.1.0"}}
    elif method == "tools/list":
        result = {"tools": [{"name": a["name"], "description": a["description"],
                             "inputSchema": {"type": "object", "properties": {"task": {"type": "string"}}}}
                            for a in agents]}
    elif method == "tools/call":
        agent = next(a for a in agents if a["name"] == request["params"]["name"])
        text = registry.get(agent["workflow"])(request["params"].get("arguments", {}).get("task", ""))
        result = {"content": [{"type": "text", "text": text}]}
    elif rid is None:
        return None  # a notification
    else:
        return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"unknown method {method}"}}
    return {"jsonrpc": "2.0", "id": rid, "result": result}


def main():
    agents = load_agents()
    if "--check" in sys.argv:
        print(f"ok: {len(agents)} agents, {len(registry.WORKFLOWS)} workflows")
        return
    for line in sys.stdin:
        if line.strip():
            response = handle(json.loads(line), agents)
            if response is not None:
                print(json.dumps(response), flush=True)


if __name__ == "__main__":
    main()
