// Compiles tests/fixtures/usdc/TestUSDC.sol with solc-js (no download: the compiler is the
// npm package itself) into TestUSDC.bin (creation bytecode, hex without 0x) and
// TestUSDC.abi.json beside it. Run from the repository root after scripts/evm-node.sh has
// installed the packages:
//   NODE_PATH=$HOME/.cache/feria/evm-node/node_modules node scripts/evm-node/compile-token.js
// The output is deterministic for the same source and compiler (the metadata hash is
// switched off), so re-running it must leave the committed files unchanged.
const fs = require("fs");
const path = require("path");
const solc = require("solc");

const dir = path.join(__dirname, "..", "..", "tests", "fixtures", "usdc");
const source = fs.readFileSync(path.join(dir, "TestUSDC.sol"), "utf8");
const input = {
  language: "Solidity",
  sources: { "TestUSDC.sol": { content: source } },
  settings: {
    evmVersion: "shanghai",
    optimizer: { enabled: true, runs: 200 },
    metadata: { bytecodeHash: "none" },
    outputSelection: { "*": { TestUSDC: ["abi", "evm.bytecode.object"] } },
  },
};
const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
if (errors.length > 0) {
  for (const e of errors) console.error(e.formattedMessage);
  process.exit(1);
}
const contract = output.contracts["TestUSDC.sol"].TestUSDC;
fs.writeFileSync(path.join(dir, "TestUSDC.bin"), contract.evm.bytecode.object + "\n");
fs.writeFileSync(path.join(dir, "TestUSDC.abi.json"), JSON.stringify(contract.abi, null, 2) + "\n");
console.log(`solc ${solc.version()}: ${contract.evm.bytecode.object.length / 2} bytes`);
