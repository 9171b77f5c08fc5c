/** How the long-running commands (serve, proxy, demo) stop. */

/** SIGTERM or SIGINT: stop gracefully, then exit 0; a second signal exits at once (1). */
export function stopOnSignals(stopGracefully: () => Promise<void>): void {
  let stopping = false;
  const stop = (): void => {
    if (stopping) process.exit(1);
    stopping = true;
    void stopGracefully().finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
