// Errors the API turns into HTTP statuses with a one-line JSON message.
export class ApiError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 409 | 413 | 416,
    message: string,
  ) {
    super(message);
  }
}

export const notFound = (what: string): ApiError => new ApiError(404, `${what} not found`);
export const conflict = (message: string): ApiError => new ApiError(409, message);
export const badRequest = (message: string): ApiError => new ApiError(400, message);
