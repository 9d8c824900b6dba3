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
const definition = protoLoader.loadSync("jamservice/v1/jam.proto", {
  includeDirs: [protoRoot],
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
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
let finished = false;

call.on("data", (response) => {
  const kind = response.kind;
  console.log(JSON.stringify({ [kind]: response[kind] }));
  if (kind === "join_redirect") {
    call.write({ join: { jam_id: response.join_redirect.jam_id, name: option("name", "") } });
  }
});
call.on("error", (error) => {
  finished = true;
  console.error(`stream failed: ${grpc.status[error.code]}: ${error.details}`);
  process.exit(1);
});
call.on("end", () => {
  finished = true;
  process.exit(0);
});

call.write({ join: { jam_id: option("jam", ""), name: option("name", "") } });

const commands = {
  play: () => call.write({ loop_event: { type: "LOOP_EVENT_TYPE_PLAYED" } }),
  stop: () => call.write({ loop_event: { type: "LOOP_EVENT_TYPE_STOPPED" } }),
  ping: () => call.write({ ping: { client_time_unix_nanos: String(BigInt(Date.now()) * 1000000n) } }),
  quit: () => call.end(),
};

readline.createInterface({ input: process.stdin }).on("line", (line) => {
  const command = commands[line.trim()];
  if (command) {
    command();
  } else if (line.trim()) {
    console.error(`unknown command ${JSON.stringify(line.trim())}: use play, stop, ping or quit`);
  }
}).on("close", () => {
  if (!finished) call.end();
});
