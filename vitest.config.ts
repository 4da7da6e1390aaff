import { defineConfig } from "vitest/config"

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: "forks",
    // vitest's default is one fork fewer than the cores, a single fork on a 2-core machine; the suites spend much of
    // their time waiting on servers and child processes, so two forks keep both cores busy
    maxWorkers: 2,
    minWorkers: 1,
    reporters: ["default"]
  }
})
