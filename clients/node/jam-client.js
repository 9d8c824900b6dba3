#!/usr/bin/env node
// A Node.js jamservice client built from protos/jamservice/v1/jam.proto with
// @grpc/grpc-js and @grpc/proto-loader. It joins a jam, prints every server
// message as one JSON line on stdout, and reads commands (play, stop, ping,
// quit) one a line on stdin, like `jam-cli join --json`.
//
//   node clients/node/jam-client.js [--server HOST:PORT] [--jam ID] [--name NAME]
"use strict";

const path = require("path");
const readline = require("readline");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

function option(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}

const server = option("server", "127.0.0.1:50051");
const protoRoot = path.join(__dirname, "..", "..", "protos");
// camelCase names, enum names, int64 as strings and no default values: protobuf's JSON
// mapping, as jam-cli --json prints it.
const definition = protoLoader.loadSync("jamservice/v1/jam.proto", {
  includeDirs: [protoRoot],
  keepCase: false,
  longs: String,
  enums: String,
  defaults: false,
  oneofs: true,
});
const { JamService } = grpc.loadPackageDefinition(definition).jamservice.v1;

// The keepalive options the server's README recommends.
const client = new JamService(server, grpc.credentials.createInsecure(), {
  "grpc.keepalive_time_ms": 20000,
  "grpc.keepalive_timeout_ms": 10000,
  "grpc.keepalive_permit_without_calls": 1,
  "grpc.http2.max_pings_without_data": 0,
});

const call = client.Jam();
const name = option("name", "");
let joined = false;
let ending = false;
const waiting = []; // commands typed before the stream holds a seat

function send(request) {
  if (!ending) call.write(request);
}

call.on("data", (response) => {
  const kind = response.kind;
  console.log(JSON.stringify({ [kind]: response[kind] }));
  if (kind === "joinRedirect") {
    send({ join: { jamId: response.joinRedirect.jamId, name } });
  } else if (kind === "joined") {
    joined = true;
    waiting.splice(0).forEach((command) => command());
  }
});
// Exit by closing the channel rather than process.exit(), which could cut off stdout.
call.on("error", (error) => {
  console.error(`stream failed: ${grpc.status[error.code]}: ${error.details}`);
  process.exitCode = 1;
  client.close();
});
call.on("end", () => client.close());

send({ join: { jamId: option("jam", ""), name } });

function quit() {
  if (!ending) {
    ending = true;
    call.end();
  }
}

const commands = {
  play: () => send({ loopEvent: { type: "LOOP_EVENT_TYPE_PLAYED" } }),
  stop: () => send({ loopEvent: { type: "LOOP_EVENT_TYPE_STOPPED" } }),
  ping: () => send({ ping: { clientTimeUnixNanos: String(BigInt(Date.now()) * 1000000n) } }),
  quit,
};

const input = readline.createInterface({ input: process.stdin });
call.on("close", () => input.close());
input.on("line", (line) => {
  const command = commands[line.trim()];
  if (!command) {
    if (line.trim()) console.error(`unknown command ${JSON.stringify(line.trim())}: use play, stop, ping or quit`);
  } else if (joined) {
    command();
  } else {
    waiting.push(command);
  }
}).on("close", () => {
  // End of input: finish what was typed once seated, then leave.
  if (joined) quit();
  else waiting.push(quit);
});
