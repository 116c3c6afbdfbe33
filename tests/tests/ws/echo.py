"""A WebSocket echo server and client (websockets, from PyPI) for the
proxy's end-to-end tests.

  echo.py serve HOST PORT NAME
      Echoes every message back; answers the text "who" with NAME.
      Prints "listening" once it is.

  echo.py client CONNECT_HOST CONNECT_PORT URL
      Connects to URL (whose host is the Host header the proxy routes by)
      through CONNECT_HOST:CONNECT_PORT, prints "open", then takes one
      command a line on stdin and prints one line for each:
        send TEXT   -> the reply
        binary N    -> "echoed N" when N random bytes came back unchanged
        close       -> "closed CODE"
"""

import asyncio
import os
import sys

from websockets.asyncio.client import connect
from websockets.asyncio.server import serve


async def server(host, port, name):
    async def echo(ws):
        async for message in ws:
            await ws.send(name if message == "who" else message)

    async with serve(echo, host, int(port), max_size=None):
        print("listening", flush=True)
        await asyncio.Future()


async def client(connect_host, connect_port, url):
    loop = asyncio.get_running_loop()
    async with connect(
        url, host=connect_host, port=int(connect_port), max_size=None
    ) as ws:
        print("open", flush=True)
        while True:
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line:
                return
            command, _, arg = line.rstrip("\n").partition(" ")
            if command == "send":
                await ws.send(arg)
                print(await ws.recv(), flush=True)
            elif command == "binary":
                data = os.urandom(int(arg))
                await ws.send(data)
                back = await ws.recv()
                print(f"echoed {len(back)}" if back == data else "changed", flush=True)
            elif command == "close":
                await ws.close()
                print(f"closed {ws.close_code}", flush=True)
                return
            else:
                print(f"unknown command {command!r}", flush=True)


if __name__ == "__main__":
    mode, *args = sys.argv[1:]
    asyncio.run(server(*args) if mode == "serve" else client(*args))
