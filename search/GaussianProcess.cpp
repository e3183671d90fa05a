//===- GaussianProcess.cpp - GP regression with an RBF kernel ----*- C++ -*-===//

#include "mixq/Search/GaussianProcess.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

using namespace mixq::search;
using Eigen::MatrixXd;
using Eigen::Vector3d;
using Eigen::VectorXd;

namespace {

constexpr double kLog2Pi = 1.8378770664093453;

/// Pairwise squared Euclidean distances between the rows of a and b.
MatrixXd squaredDistances(const MatrixXd &a, const MatrixXd &b) {
  VectorXd an = a.rowwise().squaredNorm();
  VectorXd bn = b.rowwise().squaredNorm();
  MatrixXd d = -2.0 * (a * b.transpose());
  d.colwise() += an;
  d.rowwise() += bn.transpose();
  return d.cwiseMax(0.0);
}

/// Box for the log hyperparameters (log l, log sf2, log sn2).
struct LogBox {
  Vector3d lo, hi;
  Vector3d clamp(const Vector3d &t) const { return t.cwiseMax(lo).cwiseMin(hi); }
};

GPHyperparameters fromLog(const Vector3d &t) {
  return {std::exp(t[0]), std::exp(t[1]), std::exp(t[2])};
}

Vector3d toLog(const GPHyperparameters &h) {
  return {std::log(h.lengthscale), std::log(h.signalVariance),
          std::log(h.noiseVariance)};
}

} // namespace

double mixq::search::expectedImprovement(double mean, double sigma,
                                         double best, double xi) {
  double gain = mean - best - xi;
  if (!(sigma > 1e-12))
    return std::max(0.0, gain);
  double z = gain / sigma;
  double cdf = 0.5 * std::erfc(-z / std::sqrt(2.0));
  double pdf = std::exp(-0.5 * z * z) / std::sqrt(2.0 * M_PI);
  return std::max(0.0, gain * cdf + sigma * pdf);
}

double mixq::search::upperConfidenceBound(double mean, double sigma,
                                          double kappa) {
  return mean + kappa * sigma;
}

void GaussianProcess::setInputBounds(VectorXd lower, VectorXd upper) {
  lo = std::move(lower);
  hi = std::move(upper);
  fixedBounds = true;
}

MatrixXd GaussianProcess::normalize(const MatrixXd &x) const {
  MatrixXd out = x.rowwise() - lo.transpose();
  for (int j = 0; j < out.cols(); ++j) {
    double range = hi[j] - lo[j];
    if (range > 0)
      out.col(j) /= range;
  }
  return out;
}

/// One evaluation of the log marginal likelihood, kept so that its
/// gradient can follow without factorising K again.
struct GaussianProcess::LmlEval {
  double value = -std::numeric_limits<double>::infinity();
  MatrixXd ke;             ///< sf2 * exp(-D / (2 l^2)), without noise
  Eigen::LLT<MatrixXd> llt; ///< of ke + sn2 I
  VectorXd a;               ///< K^-1 ys
};

double GaussianProcess::lmlValue(const GPHyperparameters &h,
                                 LmlEval &ev) const {
  const double ninf = -std::numeric_limits<double>::infinity();
  int n = static_cast<int>(ys.size());
  double l2 = h.lengthscale * h.lengthscale;
  ev.value = ninf;
  ev.ke = ((sqDist * (-1.0 / (2.0 * l2))).array().exp() * h.signalVariance)
              .matrix();
  MatrixXd k = ev.ke;
  k.diagonal().array() += h.noiseVariance;
  ev.llt.compute(k);
  if (ev.llt.info() != Eigen::Success)
    return ninf;
  ev.a = ev.llt.solve(ys);
  double logDet = 2.0 * ev.llt.matrixLLT().diagonal().array().log().sum();
  double lml = -0.5 * ys.dot(ev.a) - 0.5 * logDet - 0.5 * n * kLog2Pi;
  if (!std::isfinite(lml))
    return ninf;
  ev.value = lml;
  return lml;
}

Vector3d GaussianProcess::lmlGradient(const GPHyperparameters &h,
                                      const LmlEval &ev) const {
  // d lml / d theta = 0.5 tr((a a^T - K^-1) dK/dtheta). K^-1 = L^-T L^-1
  // from the triangular inverse (n^3 / 3 + n^3 / 3 flops instead of the
  // 2 n^3 of solving for the identity).
  int n = static_cast<int>(ys.size());
  MatrixXd lInv = MatrixXd::Identity(n, n);
  ev.llt.matrixL().solveInPlace(lInv);
  MatrixXd kinv(n, n);
  kinv.setZero();
  kinv.selfadjointView<Eigen::Lower>().rankUpdate(lInv.transpose());
  kinv.triangularView<Eigen::StrictlyUpper>() = kinv.transpose();
  MatrixXd w = ev.a * ev.a.transpose() - kinv;
  double l2 = h.lengthscale * h.lengthscale;
  Vector3d g;
  g[0] = 0.5 * (w.array() * ev.ke.array() * sqDist.array()).sum() / l2;
  g[1] = 0.5 * (w.array() * ev.ke.array()).sum();
  g[2] = 0.5 * h.noiseVariance * w.trace();
  return g;
}

double GaussianProcess::logMarginalLikelihood(const GPHyperparameters &h,
                                              Vector3d *grad) const {
  LmlEval ev;
  double lml = lmlValue(h, ev);
  if (grad && std::isfinite(lml))
    *grad = lmlGradient(h, ev);
  return lml;
}

void GaussianProcess::factorize() {
  double l2 = hyper.lengthscale * hyper.lengthscale;
  MatrixXd k = hyper.signalVariance *
               (-sqDist / (2.0 * l2)).array().exp().matrix();
  k.diagonal().array() += hyper.noiseVariance;
  chol.compute(k);
  // Jitter until positive definite (duplicated inputs with tiny noise).
  for (double jitter = 1e-10; chol.info() != Eigen::Success && jitter < 1;
       jitter *= 10) {
    k.diagonal().array() += jitter;
    hyper.noiseVariance += jitter;
    chol.compute(k);
  }
  alpha = chol.solve(ys);
  // (L^-1)^T, so that v = k* L^-T and var = sf2 - |v|^2.
  lInvT = chol.matrixL().solve(MatrixXd::Identity(ys.size(), ys.size()))
              .transpose();
}

llvm::Error GaussianProcess::fit(const MatrixXd &x, const VectorXd &y,
                                 const GPFitOptions &opts,
                                 GPHyperparameters init) {
  if (x.rows() == 0 || x.rows() != y.size())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "GP fit needs n >= 1 inputs and as many "
                                   "targets (got %d and %d)",
                                   int(x.rows()), int(y.size()));
  if (!y.allFinite() || !x.allFinite())
    return llvm::createStringError(llvm::inconvertibleErrorCode(),
                                   "GP fit: inputs and targets must be "
                                   "finite");
  if (!fixedBounds) {
    lo = x.colwise().minCoeff().transpose();
    hi = x.colwise().maxCoeff().transpose();
  }
  xn = normalize(x);
  sqDist = squaredDistances(xn, xn);
  yMean = y.mean();
  double var = y.size() > 1 ? (y.array() - yMean).square().sum() / y.size() : 0;
  yStd = var > 1e-300 ? std::sqrt(var) : 1.0;
  ys = (y.array() - yMean) / yStd;
  hyper = init;
  hyper.noiseVariance = std::max(hyper.noiseVariance, opts.minNoise);
  if (opts.optimize && x.rows() > 1) {
    double d = std::max<double>(1, x.cols());
    LogBox box{{std::log(1e-2), std::log(1e-3), std::log(opts.minNoise)},
               {std::log(10.0 * std::sqrt(d)), std::log(1e3), std::log(10.0)}};
    std::mt19937_64 rng(opts.seed);
    std::uniform_real_distribution<double> u(0.0, 1.0);
    Vector3d bestT = box.clamp(toLog(hyper));
    double bestF = logMarginalLikelihood(fromLog(bestT));
    for (int r = 0; r <= opts.restarts; ++r) {
      Vector3d t = bestT;
      if (r > 0) {
        t[0] = std::log(0.1) + u(rng) * std::log(20.0 * std::sqrt(d));
        t[1] = std::log(0.3) + u(rng) * std::log(10.0);
        t[2] = std::log(1e-4) + u(rng) * std::log(3e3);
        t = box.clamp(t);
      }
      // BFGS on -lml over the log box (projected steps). The line search
      // evaluates values only; the gradient follows at the accepted point.
      LmlEval ev;
      double f = -lmlValue(fromLog(t), ev);
      if (!std::isfinite(f))
        continue;
      Vector3d g = -lmlGradient(fromLog(t), ev);
      Eigen::Matrix3d hinv = Eigen::Matrix3d::Identity();
      for (int it = 0; it < opts.maxIterations; ++it) {
        Vector3d p = -hinv * g;
        if (g.dot(p) >= 0) {
          hinv.setIdentity();
          p = -g;
        }
        double step = 1.0, fn = f;
        Vector3d tn = t, gn;
        bool accepted = false;
        for (int ls = 0; ls < 30; ++ls, step *= 0.5) {
          tn = box.clamp(t + step * p);
          fn = -lmlValue(fromLog(tn), ev);
          if (std::isfinite(fn) && fn <= f + 1e-4 * g.dot(tn - t)) {
            accepted = true;
            break;
          }
        }
        if (!accepted)
          break;
        gn = -lmlGradient(fromLog(tn), ev);
        Vector3d s = tn - t, yv = gn - g;
        double sy = s.dot(yv);
        bool done = std::abs(f - fn) < 1e-9 * (1 + std::abs(f));
        t = tn;
        f = fn;
        g = gn;
        if (done || s.norm() < 1e-8)
          break;
        if (sy > 1e-10) {
          double rho = 1.0 / sy;
          Eigen::Matrix3d id = Eigen::Matrix3d::Identity();
          hinv = (id - rho * s * yv.transpose()) * hinv *
                     (id - rho * yv * s.transpose()) +
                 rho * s * s.transpose();
        }
      }
      if (-f > bestF) {
        bestF = -f;
        bestT = t;
      }
    }
    hyper = fromLog(bestT);
  }
  factorize();
  return llvm::Error::success();
}

void GaussianProcess::predict(const MatrixXd &xs, VectorXd &mean,
                              VectorXd &variance) const {
  // Blocks of candidates keep the temporaries in cache; L^-1 (computed at
  // fit time) turns the triangular solve into a matrix product.
  const Eigen::Index m = xs.rows(), block = 512;
  const double l2 = hyper.lengthscale * hyper.lengthscale;
  const double scale = -1.0 / (2.0 * l2);
  mean.resize(m);
  variance.resize(m);
  // With singleKernel, distances and kernel values are computed in single
  // precision (relative error ~1e-7, far below the model's own); means and
  // variances always in double, so sf2 - |v|^2 keeps its precision near the
  // data.
  Eigen::MatrixXf xnTf = xn.transpose().cast<float>();
  Eigen::RowVectorXd xnNorm = xn.rowwise().squaredNorm().transpose();
  Eigen::RowVectorXf xnNormF = xnNorm.cast<float>();
  Eigen::RowVectorXd invRange(lo.size());
  for (Eigen::Index d = 0; d < lo.size(); ++d)
    invRange[d] = hi[d] - lo[d] > 0 ? 1.0 / (hi[d] - lo[d]) : 1.0;
  Eigen::RowVectorXf invRangeF = invRange.cast<float>();
  Eigen::RowVectorXf loF = lo.transpose().cast<float>();
  Eigen::MatrixXf zf, distF;
  MatrixXd z, ks, v;
  for (Eigen::Index start = 0; start < m; start += block) {
    Eigen::Index n = std::min(block, m - start);
    if (singleKernel) {
      zf = ((xs.middleRows(start, n).cast<float>().rowwise() - loF).array()
                .rowwise() *
            invRangeF.array())
               .matrix();
      distF.noalias() = -2.0f * zf * xnTf;
      distF.colwise() += zf.rowwise().squaredNorm();
      distF.rowwise() += xnNormF;
      ks = ((distF.cwiseMax(0.0f) * float(scale)).array().exp() *
            float(hyper.signalVariance))
               .matrix()
               .cast<double>();
    } else {
      z = ((xs.middleRows(start, n).rowwise() - lo.transpose()).array()
               .rowwise() *
           invRange.array())
              .matrix();
      ks.noalias() = -2.0 * z * xn.transpose();
      ks.colwise() += z.rowwise().squaredNorm();
      ks.rowwise() += xnNorm;
      ks = (ks.cwiseMax(0.0) * scale).array().exp().matrix() *
           hyper.signalVariance;
    }
    mean.segment(start, n).noalias() = ks * alpha;
    v.noalias() = ks * lInvT;
    variance.segment(start, n) =
        (hyper.signalVariance - v.rowwise().squaredNorm().array())
            .cwiseMax(1e-12);
  }
  mean = mean.array() * yStd + yMean;
  variance *= yStd * yStd;
}
