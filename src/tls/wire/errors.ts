import { AlertDescription, alertName } from './alerts.js';

/**
 * The only error the engine's parsers and state machines throw on bad input.
 * It carries the alert RFC 8446 names for the fault; the engine sends that alert
 * and closes. The message is for local logs only and never holds secret bytes.
 */
export class TlsAlertError extends Error {
  readonly alert: AlertDescription;
  constructor(alert: AlertDescription, message: string) {
    super(`${alertName(alert)}: ${message}`);
    this.name = 'TlsAlertError';
    this.alert = alert;
  }
}

/** Shorthand for throwing a decode_error. */
export function decodeError(message: string): TlsAlertError {
  return new TlsAlertError(AlertDescription.decode_error, message);
}

export function illegalParameter(message: string): TlsAlertError {
  return new TlsAlertError(AlertDescription.illegal_parameter, message);
}

export function unexpectedMessage(message: string): TlsAlertError {
  return new TlsAlertError(AlertDescription.unexpected_message, message);
}
